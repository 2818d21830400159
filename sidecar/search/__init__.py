"""Search and memory (DESIGN §6): a LanceDB index fed by the change log, embedders, hybrid
search with reciprocal-rank fusion, and the agent's memory tiers."""
