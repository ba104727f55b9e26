"""The HTTP layer: Starlette routes over the use cases. Never touches pydicom or storage directly."""
