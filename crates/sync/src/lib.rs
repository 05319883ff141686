//! Cloud sync (issue 6): the `sync` step and `pixelflow export`.
