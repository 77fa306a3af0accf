"""noisybench-bootstrap: Reed et al. 2015's bootstrapping loss as a noisybench method plugin.

noisybench imports :mod:`noisybench_bootstrap.method` through the entry point
``bootstrap`` in the group ``noisybench.methods``; importing this package alone registers nothing.
"""
