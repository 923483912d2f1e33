"""One module per ``bench`` subcommand; each imports its heavy dependencies inside the command."""
