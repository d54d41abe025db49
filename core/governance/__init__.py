"""Who may do what, human decisions on versions, the promotion gate and the audit log."""
