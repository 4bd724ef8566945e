"""Benchmarks of a spec's backward pass: measuring, timing, the scaling plot and the items
the pytest plugin yields under --benchmark-only. The top layer, beside the plugin."""
