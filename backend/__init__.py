"""Hardware model, partition, placement, routing, layout, image and interpreter."""
