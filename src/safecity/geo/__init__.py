"""Geography: the jurisdiction hierarchy (province > district > tehsil > police station), its
import and validation, and point -> station lookup."""
