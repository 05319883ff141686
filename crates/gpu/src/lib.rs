//! GPU filters (issue 8): the filter chain as wgpu compute shaders.
