//! A chain's compiled passes (from the CPU reference, matrices and weights already in `f32`)
//! turned into the dispatches of one tile: the data they read (ops and weights) and each
//! dispatch's parameters. Per-pixel runs stay fused into one dispatch; the chain's leading run
//! is applied while loading the samples and its trailing run while storing them.

use pixelflow_imaging::filter::{Neighbourhood, Pass, PixelOp};

/// Floats a per-pixel op takes in the data buffer (its kind, then up to 20 parameters).
pub(crate) const OP_FLOATS: usize = 24;

/// Which pipeline a dispatch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Pixel,
    BlurRows,
    BlurColumns,
    Convolve,
}

/// `params.mode` of the pixel kernel.
pub(crate) const APPLY: u32 = 0;
pub(crate) const LOAD: u32 = 1;
pub(crate) const STORE: u32 = 2;
pub(crate) const DIRECT: u32 = 3;

/// One dispatch, before the tile's size and place are known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dispatch {
    pub kernel: Kernel,
    /// Which working buffer is the image (0 or 1); the other is the scratch.
    pub image: usize,
    pub ops_start: u32,
    pub ops_count: u32,
    pub mode: u32,
    pub weights_start: u32,
    pub radius: u32,
    pub amount: f32,
    pub threshold: f32,
    pub bias: f32,
}

impl Dispatch {
    fn new(kernel: Kernel, image: usize) -> Dispatch {
        Dispatch { kernel, image, ops_start: 0, ops_count: 0, mode: 0, weights_start: 0, radius: 0, amount: 0.0, threshold: 0.0, bias: 0.0 }
    }

    /// The parameters as `common.wgsl`'s `Params` lays them out, for a tile of `size` at
    /// `origin` in an image of `full` size, samples 16-bit when `wide`.
    pub fn params(&self, size: (u32, u32), full: (u32, u32), origin: (u32, u32), wide: bool) -> [u32; 16] {
        [
            size.0,
            size.1,
            full.0,
            full.1,
            origin.0,
            origin.1,
            self.ops_start,
            self.ops_count,
            self.mode,
            u32::from(wide),
            self.weights_start,
            self.radius,
            self.amount.to_bits(),
            self.threshold.to_bits(),
            self.bias.to_bits(),
            0,
        ]
    }
}

/// The dispatches of a chain and the data they read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Program {
    pub dispatches: Vec<Dispatch>,
    pub data: Vec<f32>,
    /// Pixels a tile needs around it so that its own pixels come out as for the whole image:
    /// the sum of the neighbourhood passes' radii.
    pub halo: u32,
    /// Whether the chain needs the working images (any neighbourhood pass).
    pub needs_working: bool,
}

/// Appends one op as kind + parameters, padded to [`OP_FLOATS`].
fn push_op(data: &mut Vec<f32>, op: &PixelOp) {
    let mut record = [0.0f32; OP_FLOATS];
    let (kind, values): (f32, &[f32]) = match op {
        PixelOp::Affine { scale, offset } => (0.0, &[*scale, *offset]),
        PixelOp::Contrast(k) => (1.0, std::slice::from_ref(k)),
        PixelOp::Power(e) => (2.0, std::slice::from_ref(e)),
        PixelOp::Matrix3(m) => (3.0, m),
        PixelOp::Matrix4x5(m) => (4.0, m),
        PixelOp::Vignette { strength, radius } => (5.0, &[*strength, *radius]),
    };
    record[0] = kind;
    record[1..1 + values.len()].copy_from_slice(values);
    data.extend_from_slice(&record);
}

impl Program {
    pub fn new(passes: &[Pass]) -> Program {
        let mut data: Vec<f32> = Vec::new();
        let ops = |data: &mut Vec<f32>, kernel_mode: u32, ops: &[PixelOp], image: usize| {
            let mut d = Dispatch::new(Kernel::Pixel, image);
            d.mode = kernel_mode;
            d.ops_start = data.len() as u32;
            d.ops_count = ops.len() as u32;
            for op in ops {
                push_op(data, op);
            }
            d
        };
        let mut dispatches = Vec::new();
        if let [Pass::Pixel(only)] = passes {
            dispatches.push(ops(&mut data, DIRECT, only, 0));
            return Program { dispatches, data, halo: 0, needs_working: false };
        }
        let (lead, middle) = match passes.split_first() {
            Some((Pass::Pixel(lead), rest)) => (lead.as_slice(), rest),
            _ => (&[][..], passes),
        };
        let (middle, tail) = match middle.split_last() {
            Some((Pass::Pixel(tail), rest)) => (rest, tail.as_slice()),
            _ => (middle, &[][..]),
        };
        let mut image = 0;
        let mut halo = 0u32;
        dispatches.push(ops(&mut data, LOAD, lead, image));
        let weights = |data: &mut Vec<f32>, w: &[f32]| {
            let start = data.len() as u32;
            data.extend_from_slice(w);
            start
        };
        for pass in middle {
            match pass {
                Pass::Pixel(run) => dispatches.push(ops(&mut data, APPLY, run, image)),
                Pass::Neighbourhood(Neighbourhood::Blur(g)) | Pass::Neighbourhood(Neighbourhood::Unsharp { gaussian: g, .. }) => {
                    let start = weights(&mut data, &g.weights);
                    let mut rows = Dispatch::new(Kernel::BlurRows, image);
                    rows.weights_start = start;
                    rows.radius = g.radius as u32;
                    let mut columns = Dispatch { kernel: Kernel::BlurColumns, ..rows.clone() };
                    if let Pass::Neighbourhood(Neighbourhood::Unsharp { amount, threshold, .. }) = pass {
                        columns.mode = 1;
                        columns.amount = *amount;
                        columns.threshold = *threshold;
                    }
                    dispatches.extend([rows, columns]);
                    halo = halo.saturating_add(g.radius as u32);
                }
                Pass::Neighbourhood(Neighbourhood::Convolve { size, weights: w, bias, preserve_alpha }) => {
                    let mut d = Dispatch::new(Kernel::Convolve, image);
                    d.weights_start = weights(&mut data, w);
                    d.radius = (*size / 2) as u32;
                    d.mode = u32::from(*preserve_alpha);
                    d.bias = *bias;
                    dispatches.push(d);
                    // The result is in the other buffer, which becomes the image.
                    image = 1 - image;
                    halo = halo.saturating_add((*size / 2) as u32);
                }
            }
        }
        dispatches.push(ops(&mut data, STORE, tail, image));
        Program { dispatches, data, halo, needs_working: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflow_imaging::filter::{FilterChain, FilterOp};

    fn program(filters: Vec<FilterOp>) -> Program {
        Program::new(FilterChain::new(filters).unwrap().compiled())
    }

    #[test]
    fn per_pixel_runs_fuse_into_the_load_and_store() {
        let p = program(vec![FilterOp::Brightness { amount: 1.2 }, FilterOp::Sepia { amount: 1.0 }]);
        assert_eq!(p.dispatches.len(), 1);
        assert_eq!((p.dispatches[0].mode, p.dispatches[0].ops_count), (DIRECT, 2));
        assert_eq!((p.halo, p.needs_working, p.data.len()), (0, false, 2 * OP_FLOATS));
        assert_eq!(&p.data[..3], &[0.0, 1.2, 0.0]);

        let p = program(vec![
            FilterOp::Contrast { amount: 1.1 },
            FilterOp::Invert { amount: 1.0 },
            FilterOp::Blur { sigma: 1.0 },
            FilterOp::Gamma { value: 2.0 },
            FilterOp::Convolve { kernel: vec![0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0], divisor: None, bias: 0.0, preserve_alpha: false },
            FilterOp::Vignette { strength: 0.5, radius: 0.5 },
        ]);
        let kinds: Vec<(Kernel, u32, usize)> = p.dispatches.iter().map(|d| (d.kernel, d.mode, d.image)).collect();
        assert_eq!(
            kinds,
            [
                (Kernel::Pixel, LOAD, 0),
                (Kernel::BlurRows, 0, 0),
                (Kernel::BlurColumns, 0, 0),
                (Kernel::Pixel, APPLY, 0),
                (Kernel::Convolve, 0, 0),
                (Kernel::Pixel, STORE, 1),
            ]
        );
        assert_eq!(p.dispatches[0].ops_count, 2);
        assert_eq!(p.halo, 3 + 1);
    }
}
