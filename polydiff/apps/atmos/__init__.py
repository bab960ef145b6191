"""atmos: atmospheric super-resolution from coarse fields and sparse observations.

A score prior over fine multi-variable fields, conditioned zero-shot on a coarse-grained
field and/or point observations by measurement guidance; an ensemble gives the spread.
"""
