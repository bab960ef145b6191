"""mri: Active Diffusion Subsampling — particles in the reverse diffusion acquire k-space
columns by maximum expected entropy, with DPS posterior sampling (``polydiff mri ...``)."""
