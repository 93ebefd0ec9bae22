"""Front ends over the core: background jobs, HTML reports, the app's workspace and its
access rules."""
