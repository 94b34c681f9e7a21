"""kube-proxy's nftables mode: the ruleset (pure data), its render and its applier."""
