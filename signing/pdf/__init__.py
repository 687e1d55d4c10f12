"""PAdES signatures on official documents: options, placement, appearance, anchors, signing,
archive timestamps, and the one way PDFs are read (by the signer and the verifier alike)."""
