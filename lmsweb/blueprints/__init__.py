"""One module per area, each naming its blueprint `bp`."""
