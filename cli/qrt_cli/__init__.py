"""The `qrt` command, above every service: `qrt dev` runs the whole platform in one process,
`qrt gateway`, `qrt scheduler`, `qrt executor` and `qrt device` run one service each."""
