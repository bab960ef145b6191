"""The mesh app: text to multi-view normal maps (Direct2.5-style) and to meshes."""
