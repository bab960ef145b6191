"""The pde app: Burgers trajectories by wavelet-domain diffusion (WDNO), super-resolution
and control, with the physical-domain model as ablation."""
