"""The `claudenest` command line. Rendering (rich) lives here and only here."""
