"""The CLI's commands: CLI values become typed objects once, the library runs, results become text.

One module per command; with cli.py, the only code that knows about flags and printing."""
