"""The platform's REST API: routers over ``mlplatform.operations``; ``mlplatform.webapp`` mounts it with the UI."""
