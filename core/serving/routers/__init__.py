"""The API's routers: TF Serving's REST protocol, plain endpoints, operations."""
