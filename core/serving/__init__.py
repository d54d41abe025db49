"""The serving API: TF Serving's REST protocol and plain endpoints over ``core.app``."""
