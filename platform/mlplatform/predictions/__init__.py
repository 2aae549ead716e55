"""The prediction log: records (``records``), sinks (``sinks``), the servers' writer (``writer``) and the reader
the drift job uses (``reader``).  Below both ``serving`` and ``monitoring``; imports neither."""
