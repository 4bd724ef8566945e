"""Spec files -> specs: the one discovery rule, TOML (data, never code), Python spec modules,
and the formula compiler with its whitelist. Above the spec model, below the checks."""
