"""How a reader tells a generated demo twin from the real data set."""

#: the hidden file every demo twin holds and the real data lacks (:mod:`cvflow.twins.output` writes it)
DEMO_MARKER = ".cvflow-demo.json"
