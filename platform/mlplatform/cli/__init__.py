"""The ``mlplatform`` command line: ``main`` assembles one module per command group; ``_common`` holds what they
share; ``platform_api_client`` is how commands reach the platform API (remote, or the same app in-process)."""
