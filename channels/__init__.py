"""How a touch leaves the engine: email over SMTP, or a task in a person's queue."""
