//! Running a chain on the GPU: the image is cut into tiles that fit the device (each with the
//! chain's halo around it), each tile's samples are uploaded (8-bit ones as the image stores
//! them, 16-bit ones packed as RGBA in two `u32`), run through the program's dispatches, read
//! back (RGBA) and unpacked into the output. Tiles are pipelined: tile `n + 1` is staged,
//! uploaded and submitted before tile `n`'s results are waited for (two staging buffers), so
//! the CPU's staging and unpacking overlap the device's work. The buffers and the bind group
//! live in a [`Pool`] and are reused from image to image, growing only for a larger tile.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::DynamicImage;
use pixelflow_imaging::filter::Sample;
use pixelflow_imaging::FilterChain;
use rayon::prelude::*;

use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::program::{Program, Samples, WORKGROUP};

/// The most pixels a tile holds (halo included) unless the device allows fewer: 16 MP, so a
/// tile's buffers stay under about 700 MB.
pub const DEFAULT_TILE_PIXELS: u64 = 1 << 24;

/// How [`GpuFilter`] runs.
#[derive(Debug, Clone, Default)]
pub struct GpuFilterOptions {
    /// The most pixels a tile may hold, halo included (at most what the device allows;
    /// default [`DEFAULT_TILE_PIXELS`]). Tests force a small one to exercise tiling.
    pub max_tile_pixels: Option<u64>,
    /// Waits for the device after the upload and after each dispatch, so that [`Timings`]
    /// says where the time went (slower: nothing overlaps). For benchmarks.
    pub profile: bool,
}

/// Where the time of one image went.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Staging samples (copying or packing them where needed) and unpacking results on the CPU.
    pub pack: Duration,
    /// Handing the samples to the device (with `profile`, until they are there).
    pub upload: Duration,
    /// Waiting for the device. Pipelined: its dispatches and the copy back, less what
    /// overlapped the CPU's packing and unpacking of other tiles. With `profile`: the
    /// dispatches alone (the sum of `stages`).
    pub compute: Duration,
    /// With `profile`: copying the results back and mapping them.
    pub readback: Duration,
    /// With `profile`: each dispatch of the chain (summed over the tiles), in order.
    pub stages: Vec<(&'static str, Duration)>,
    pub tiles: usize,
}

impl Timings {
    pub fn total(&self) -> Duration {
        self.pack + self.upload + self.compute + self.readback
    }
}

/// A region of the image: `x, y, width, height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One tile: the pixels it produces (`out`) and the region it reads (`read`: `out` grown by the
/// halo, clipped to the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tile {
    pub out: Rect,
    pub read: Rect,
}

/// Cuts a `width x height` image into tiles of at most `max_pixels` (halo included), whole
/// when it fits, and at most `max_side` pixels a side: full-width bands when the halo above
/// and below leaves each band at least as many rows of its own (less work redone, contiguous
/// rows), else square-ish tiles.
pub(crate) fn tiles(width: u32, height: u32, halo: u32, max_pixels: u64, max_side: u32) -> Result<Vec<Tile>> {
    let whole = Rect { x: 0, y: 0, w: width, h: height };
    if u64::from(width) * u64::from(height) <= max_pixels && width <= max_side && height <= max_side {
        return Ok(vec![Tile { out: whole, read: whole }]);
    }
    let band = (max_pixels / u64::from(width)).min(u64::from(max_side)).saturating_sub(2 * u64::from(halo));
    if width <= max_side && band >= (2 * u64::from(halo)).max(1) {
        return Ok(cut(width, height, halo, width, band.min(u64::from(height)) as u32));
    }
    let refuse = || Error::Unsupported(format!("a halo of {halo} pixels leaves no room in tiles of {max_pixels} pixels"));
    // Square-ish tiles: as wide as allowed (the image's width at most), then as tall as fits.
    let side = (max_pixels as f64).sqrt().floor() as u64;
    let tw = side.min(u64::from(max_side)).saturating_sub(2 * u64::from(halo)).min(u64::from(width));
    if tw == 0 {
        return Err(refuse());
    }
    let read_w = (tw + 2 * u64::from(halo)).min(u64::from(width));
    let th = (max_pixels / read_w).min(u64::from(max_side)).saturating_sub(2 * u64::from(halo)).min(u64::from(height));
    if th == 0 {
        return Err(refuse());
    }
    Ok(cut(width, height, halo, tw as u32, th as u32))
}

/// Tiles of `tw x th` own pixels (smaller at the right and bottom edges), each reading its
/// halo around it within the image.
fn cut(width: u32, height: u32, halo: u32, tw: u32, th: u32) -> Vec<Tile> {
    let mut out = Vec::new();
    for y in (0..height).step_by(th as usize) {
        for x in (0..width).step_by(tw as usize) {
            let o = Rect { x, y, w: tw.min(width - x), h: th.min(height - y) };
            let (x0, y0) = (x.saturating_sub(halo), y.saturating_sub(halo));
            let (x1, y1) = ((x + o.w).saturating_add(halo).min(width), (y + o.h).saturating_add(halo).min(height));
            out.push(Tile { out: o, read: Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } });
        }
    }
    out
}

/// A stored sample type as the kernels read it: 8 bits (one `u32` a pixel) or 16 (two).
trait Packed: Sample {
    const WORDS: usize;
    const MAX: Self;
    fn pack(px: [Self; 4], out: &mut [u32]);
    fn unpack(raw: &[u32]) -> [Self; 4];
    /// How the tiles of an image with `channels` samples a pixel are uploaded.
    fn samples(channels: usize) -> Samples;
    /// Region `r` of the image as uploaded: whole words (borrowed from `samples` where they
    /// lie in one piece, else built in `scratch`), then the last bytes padded to a word.
    fn stage<'s>(samples: &'s [Self], channels: usize, width: u32, r: Rect, scratch: &'s mut Vec<u32>) -> (&'s [u8], Option<[u8; 4]>);
}

impl Packed for u8 {
    const WORDS: usize = 1;
    const MAX: u8 = u8::MAX;

    fn samples(channels: usize) -> Samples {
        Samples::Bytes(channels)
    }

    /// The samples as they are: no packing (the shaders read 1 to 4 bytes a pixel).
    fn stage<'s>(samples: &'s [u8], channels: usize, width: u32, r: Rect, scratch: &'s mut Vec<u32>) -> (&'s [u8], Option<[u8; 4]>) {
        let row = r.w as usize * channels;
        let len = row * r.h as usize;
        let start = (r.y as usize * width as usize + r.x as usize) * channels;
        if r.x == 0 && r.w == width {
            // Whole rows: one piece of the image.
            let bytes = &samples[start..start + len];
            let whole = len / 4 * 4;
            let tail = (whole < len).then(|| {
                let mut last = [0u8; 4];
                last[..len - whole].copy_from_slice(&bytes[whole..]);
                last
            });
            return (&bytes[..whole], tail);
        }
        scratch.clear();
        scratch.resize(len.div_ceil(4), 0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(scratch.as_mut_slice());
        bytes[..len].par_chunks_mut(row).enumerate().for_each(|(i, out)| {
            let from = start + i * width as usize * channels;
            out.copy_from_slice(&samples[from..from + row]);
        });
        (bytemuck::cast_slice(scratch.as_slice()), None)
    }

    fn pack(px: [u8; 4], out: &mut [u32]) {
        out[0] = u32::from_le_bytes(px);
    }

    fn unpack(raw: &[u32]) -> [u8; 4] {
        raw[0].to_le_bytes()
    }
}

impl Packed for u16 {
    const WORDS: usize = 2;
    const MAX: u16 = u16::MAX;

    fn pack(px: [u16; 4], out: &mut [u32]) {
        out[0] = u32::from(px[0]) | u32::from(px[1]) << 16;
        out[1] = u32::from(px[2]) | u32::from(px[3]) << 16;
    }

    fn unpack(raw: &[u32]) -> [u16; 4] {
        [raw[0] as u16, (raw[0] >> 16) as u16, raw[1] as u16, (raw[1] >> 16) as u16]
    }

    fn samples(_: usize) -> Samples {
        Samples::Rgba16
    }

    /// Packed as RGBA (two words a pixel).
    fn stage<'s>(samples: &'s [u16], channels: usize, width: u32, r: Rect, scratch: &'s mut Vec<u32>) -> (&'s [u8], Option<[u8; 4]>) {
        pack(samples, channels, width, r, scratch);
        (bytemuck::cast_slice(scratch.as_slice()), None)
    }
}

/// The region `r` of an image (`channels` samples a pixel, `width` wide) as packed RGBA, as
/// the CPU reads it: grey to `R = G = B`, a missing alpha to the maximum.
fn pack<T: Packed>(samples: &[T], channels: usize, width: u32, r: Rect, out: &mut Vec<u32>) {
    let row_words = r.w as usize * T::WORDS;
    out.clear();
    out.resize(row_words * r.h as usize, 0);
    out.par_chunks_mut(row_words).enumerate().for_each(|(i, row)| {
        let start = ((r.y as usize + i) * width as usize + r.x as usize) * channels;
        let src = &samples[start..start + r.w as usize * channels];
        for (s, o) in src.chunks_exact(channels).zip(row.chunks_exact_mut(T::WORDS)) {
            let px = match channels {
                1 => [s[0], s[0], s[0], T::MAX],
                2 => [s[0], s[0], s[0], s[1]],
                3 => [s[0], s[1], s[2], T::MAX],
                _ => [s[0], s[1], s[2], s[3]],
            };
            T::pack(px, o);
        }
    });
}

/// The tile's own pixels from its packed result `raw` (the whole `read` region) into the
/// output image (`channels` samples a pixel): grey takes R, no alpha drops A.
fn unpack<T: Packed>(raw: &[u32], tile: &Tile, width: u32, channels: usize, out: &mut [T]) {
    let (o, r) = (tile.out, tile.read);
    let stride = width as usize * channels;
    let rows = out.par_chunks_mut(stride).skip(o.y as usize).take(o.h as usize);
    rows.enumerate().for_each(|(i, row)| {
        let src_row = (o.y - r.y) as usize + i;
        let start = (src_row * r.w as usize + (o.x - r.x) as usize) * T::WORDS;
        let src = &raw[start..start + o.w as usize * T::WORDS];
        let dst = &mut row[o.x as usize * channels..(o.x + o.w) as usize * channels];
        for (s, d) in src.chunks_exact(T::WORDS).zip(dst.chunks_exact_mut(channels)) {
            let px = T::unpack(s);
            match channels {
                1 => d[0] = px[0],
                2 => {
                    d[0] = px[0];
                    d[1] = px[3];
                }
                3 => d.copy_from_slice(&px[..3]),
                _ => d.copy_from_slice(&px),
            }
        }
    });
}

/// The device buffers one image needs, reused by the next: they grow to the largest tile seen
/// and are never shrunk; the bind group is rebuilt only when a buffer is replaced. Two staging
/// buffers, so that one tile's results are read back while the next tile runs.
pub(crate) struct Pool {
    raw_in: wgpu::Buffer,
    raw_out: wgpu::Buffer,
    work: [wgpu::Buffer; 2],
    staging: [wgpu::Buffer; 2],
    params: wgpu::Buffer,
    bind_group: Option<wgpu::BindGroup>,
    /// The samples of the tile being uploaded, when they must be copied or packed first.
    packed: Vec<u32>,
}

fn buffer(device: &wgpu::Device, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: size.max(16), usage, mapped_at_creation: false })
}

const STORAGE_IN: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST);
const STORAGE_OUT: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC);
const STAGING: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);
const UNIFORM: wgpu::BufferUsages = wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

/// Bytes of the tile parameters (`Params` in `common.wgsl`).
const PARAMS_BYTES: u64 = 32;

impl Pool {
    pub(crate) fn new(device: &wgpu::Device) -> Pool {
        Pool {
            raw_in: buffer(device, "raw in", 16, STORAGE_IN),
            raw_out: buffer(device, "raw out", 16, STORAGE_OUT),
            work: [buffer(device, "work 0", 16, wgpu::BufferUsages::STORAGE), buffer(device, "work 1", 16, wgpu::BufferUsages::STORAGE)],
            staging: [buffer(device, "staging 0", 16, STAGING), buffer(device, "staging 1", 16, STAGING)],
            params: buffer(device, "params", PARAMS_BYTES, UNIFORM),
            bind_group: None,
            packed: Vec::new(),
        }
    }

    /// Grows the buffers to hold a tile of `pixels` (`raw` bytes a pixel; working images only
    /// when `working`).
    fn reserve(&mut self, ctx: &GpuContext, pixels: u64, raw: u64, working: bool) {
        let device = &ctx.device;
        let most = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        let grow = |b: &mut wgpu::Buffer, size: u64, label: &str, usage| {
            if b.size() < size {
                // A quarter more, so a slightly larger next image does not reallocate again
                // (a multiple of 256, so also of 4 as storage bindings need), within what a
                // binding may cover.
                *b = buffer(device, label, (size + size / 4).next_multiple_of(256).min(most).max(size), usage);
                true
            } else {
                false
            }
        };
        let mut changed = grow(&mut self.raw_in, pixels * raw, "raw in", STORAGE_IN);
        changed |= grow(&mut self.raw_out, pixels * raw, "raw out", STORAGE_OUT);
        let [s0, s1] = &mut self.staging;
        grow(s0, pixels * raw, "staging 0", STAGING);
        grow(s1, pixels * raw, "staging 1", STAGING);
        if working {
            let [w0, w1] = &mut self.work;
            changed |= grow(w0, pixels * 16, "work 0", wgpu::BufferUsages::STORAGE);
            changed |= grow(w1, pixels * 16, "work 1", wgpu::BufferUsages::STORAGE);
        }
        if changed || self.bind_group.is_none() {
            fn entry(binding: u32, b: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
                wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() }
            }
            self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("filter"),
                layout: &ctx.layout,
                entries: &[entry(0, &self.params), entry(1, &self.raw_in), entry(2, &self.raw_out), entry(3, &self.work[0]), entry(4, &self.work[1])],
            }));
        }
    }
}

/// A tile submitted to the device whose results are on their way into a staging buffer.
struct InFlight {
    tile: Tile,
    staging: usize,
    bytes: u64,
    submission: wgpu::SubmissionIndex,
    mapped: mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

/// Runs chains on one [`GpuContext`].
pub struct GpuFilter<'a> {
    ctx: &'a GpuContext,
    options: GpuFilterOptions,
}

impl<'a> GpuFilter<'a> {
    pub fn new(ctx: &'a GpuContext, options: GpuFilterOptions) -> GpuFilter<'a> {
        GpuFilter { ctx, options }
    }

    /// Applies `chain` to `image` as [`FilterChain::apply`] does (same size, bit depth and
    /// channels; within 1/255 of its samples), checking `should_stop` between tiles. Float
    /// images are [`Error::Unsupported`] (no decoder makes them; the CPU path reads them).
    pub fn apply(&self, chain: &FilterChain, image: &DynamicImage, should_stop: &dyn Fn() -> bool) -> Result<(DynamicImage, Timings)> {
        self.ctx.check_alive()?;
        if let Some((samples, channels)) = u8::view(image) {
            self.run(samples, channels, image, chain, should_stop)
        } else if let Some((samples, channels)) = u16::view(image) {
            self.run(samples, channels, image, chain, should_stop)
        } else {
            Err(Error::Unsupported(format!("{:?} samples", image.color())))
        }
    }

    fn max_tile_pixels(&self, working: bool) -> u64 {
        let l = &self.ctx.limits;
        let per_buffer = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        let device = per_buffer / if working { 16 } else { 8 };
        self.options.max_tile_pixels.unwrap_or(DEFAULT_TILE_PIXELS).min(device).max(1)
    }

    fn run<T: Packed>(&self, samples: &[T], channels: usize, image: &DynamicImage, chain: &FilterChain, should_stop: &dyn Fn() -> bool) -> Result<(DynamicImage, Timings)> {
        let (width, height) = (image.width(), image.height());
        let out_channels = chain.output_channels(channels);
        let too_large = || Error::Unsupported(format!("a {width}x{height} image is too large"));
        let len = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(out_channels)).ok_or_else(too_large)?;
        let mut out: Vec<T> = Vec::new();
        out.try_reserve_exact(len).map_err(|_| too_large())?;
        out.resize(len, T::default());
        let mut timings = Timings::default();
        if width == 0 || height == 0 {
            return Ok((T::into_image(out, width, height, out_channels).ok_or_else(too_large)?, timings));
        }
        let program = Program::new(chain.compiled(), T::samples(channels));
        let max_side = self.ctx.limits.max_compute_workgroups_per_dimension.saturating_mul(WORKGROUP);
        let tiles = tiles(width, height, program.halo, self.max_tile_pixels(program.needs_working), max_side)?;

        // Allocation failures and refused commands are caught here and become errors (the
        // caller then runs the CPU path), never panics.
        let device = &self.ctx.device;
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let image = Image { samples, channels, width, height, out_channels };
        let result = self.run_tiles(&program, &tiles, &image, &mut out, &mut timings, should_stop);
        let validation = pollster::block_on(validation.pop());
        let memory = pollster::block_on(memory.pop());
        if let Some(error) = memory.or(validation) {
            return Err(Error::Run(error.to_string()));
        }
        self.ctx.check_alive()?;
        result?;
        timings.tiles = tiles.len();
        Ok((T::into_image(out, width, height, out_channels).ok_or_else(too_large)?, timings))
    }

    /// Every tile through the device, pipelined: tile `n + 1` is staged, uploaded and
    /// submitted before tile `n`'s results are waited for and unpacked, each into its own
    /// staging buffer.
    fn run_tiles<T: Packed>(&self, program: &Program, tiles: &[Tile], image: &Image<T>, out: &mut [T], timings: &mut Timings, should_stop: &dyn Fn() -> bool) -> Result<()> {
        let pipelines = self.ctx.pipelines(program)?;
        let largest = tiles.iter().map(|t| u64::from(t.read.w) * u64::from(t.read.h)).max().unwrap_or(1);
        let mut pool = self.ctx.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pool.reserve(self.ctx, largest, (T::WORDS * 4) as u64, program.needs_working);
        if self.options.profile {
            timings.stages = program.stages.iter().map(|s| (s.label, Duration::ZERO)).collect();
        }
        let mut in_flight: Option<InFlight> = None;
        let mut result = Ok(());
        for (n, tile) in tiles.iter().enumerate() {
            if should_stop() {
                result = Err(Error::Cancelled);
                break;
            }
            let submitted = self.submit(&mut pool, program, &pipelines, tile, n % 2, image, timings);
            let previous = match submitted {
                Ok(next) => in_flight.replace(next),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Some(previous) = previous {
                result = self.finish(&pool, previous, image, out, timings);
                if result.is_err() {
                    break;
                }
            }
        }
        if let Some(last) = in_flight {
            if result.is_ok() {
                result = self.finish(&pool, last, image, out, timings);
            } else {
                // Leave no staging buffer mapped or waiting to be: the next image copies into it.
                let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
                pool.staging[last.staging].unmap();
            }
        }
        result
    }

    fn wait(&self, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let poll = wgpu::PollType::Wait { submission_index: submission, timeout: None };
        self.ctx.device.poll(poll).map(|_| ()).map_err(|e| Error::Device(e.to_string()))
    }

    /// Stages and uploads `tile`, records its dispatches and the copy of its results into
    /// staging buffer `staging`, submits them and asks for the mapping.
    #[allow(clippy::too_many_arguments)]
    fn submit<T: Packed>(&self, pool: &mut Pool, program: &Program, pipelines: &[wgpu::ComputePipeline], tile: &Tile, staging: usize, image: &Image<T>, timings: &mut Timings) -> Result<InFlight> {
        let (device, queue) = (&self.ctx.device, &self.ctx.queue);
        let profile = self.options.profile;
        let r = tile.read;

        let start = Instant::now();
        let mut packed = std::mem::take(&mut pool.packed);
        let (words, tail) = T::stage(image.samples, image.channels, image.width, r, &mut packed);
        timings.pack += start.elapsed();

        let start = Instant::now();
        // Queued writes land before the next submission's commands, after the previous
        // tile's: one set of input buffers serves every tile.
        if !words.is_empty() {
            queue.write_buffer(&pool.raw_in, 0, words);
        }
        if let Some(tail) = tail {
            queue.write_buffer(&pool.raw_in, words.len() as u64, &tail);
        }
        pool.packed = packed;
        let params: [u32; 8] = [r.w, r.h, image.width, image.height, r.x, r.y, 0, 0];
        queue.write_buffer(&pool.params, 0, bytemuck::cast_slice(&params));
        if profile {
            queue.submit(std::iter::empty::<wgpu::CommandBuffer>());
            self.wait(None)?;
        }
        timings.upload += start.elapsed();

        let bind_group = pool.bind_group.as_ref().expect("reserve builds the bind group");
        let dispatch = |encoder: &mut wgpu::CommandEncoder, stages: std::ops::Range<usize>| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("filter"), timestamp_writes: None });
            pass.set_bind_group(0, bind_group, &[]);
            for k in stages {
                let (bx, by) = program.stages[k].block;
                pass.set_pipeline(&pipelines[k]);
                pass.dispatch_workgroups(r.w.div_ceil(WORKGROUP * bx), r.h.div_ceil(WORKGROUP * by), 1);
            }
        };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("filter") });
        if profile {
            for k in 0..pipelines.len() {
                let start = Instant::now();
                let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("filter") });
                dispatch(&mut encoder, k..k + 1);
                queue.submit([encoder.finish()]);
                self.wait(None)?;
                timings.stages[k].1 += start.elapsed();
                timings.compute += start.elapsed();
            }
        } else {
            dispatch(&mut encoder, 0..pipelines.len());
        }
        let bytes = u64::from(r.w) * u64::from(r.h) * (T::WORDS as u64) * 4;
        let buffer = &pool.staging[staging];
        encoder.copy_buffer_to_buffer(&pool.raw_out, 0, buffer, 0, bytes);
        let start = Instant::now();
        let submission = queue.submit([encoder.finish()]);
        let (sender, mapped) = mpsc::channel();
        buffer.slice(..bytes).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        if profile {
            let waited = self.wait(Some(submission.clone()));
            timings.readback += start.elapsed();
            if let Err(e) = waited {
                // Leave the staging buffer free for the next image.
                buffer.unmap();
                return Err(e);
            }
        }
        Ok(InFlight { tile: *tile, staging, bytes, submission, mapped })
    }

    /// Waits for a submitted tile's results and unpacks them into `out`.
    fn finish<T: Packed>(&self, pool: &Pool, tile: InFlight, image: &Image<T>, out: &mut [T], timings: &mut Timings) -> Result<()> {
        let start = Instant::now();
        let buffer = &pool.staging[tile.staging];
        let waited = self.wait(Some(tile.submission));
        let mapped = match waited.and_then(|()| tile.mapped.recv().map_err(|_| Error::Device("the device did not answer the readback".into()))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Run(format!("reading the result back: {e}"))),
            Err(e) => Err(e),
        };
        if let Err(e) = mapped {
            buffer.unmap();
            return Err(e);
        }
        if self.options.profile {
            timings.readback += start.elapsed();
        } else {
            timings.compute += start.elapsed();
        }
        let slice = buffer.slice(..tile.bytes);
        let unpacked = slice.get_mapped_range().map(|view| {
            let start = Instant::now();
            unpack::<T>(bytemuck::cast_slice(&view), &tile.tile, image.width, image.out_channels, out);
            timings.pack += start.elapsed();
        });
        buffer.unmap();
        unpacked.map_err(|e| Error::Run(format!("reading the result back: {e}")))
    }
}

/// The image being filtered: its samples, and its output's layout.
struct Image<'s, T> {
    samples: &'s [T],
    channels: usize,
    width: u32,
    height: u32,
    out_channels: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tile_when_it_fits_else_tiles_that_cover_the_image_once() {
        assert_eq!(tiles(40, 30, 5, 1200, 1 << 20).unwrap().len(), 1);
        for (w, h, halo, max) in [(37u32, 29u32, 3u32, 256u64), (100, 7, 0, 300), (5, 300, 2, 100), (64, 64, 1, 1000)] {
            let tiles = tiles(w, h, halo, max, 1 << 20).unwrap();
            assert!(tiles.len() > 1, "{w}x{h}");
            let mut covered = vec![0u8; (w * h) as usize];
            for t in &tiles {
                assert!(u64::from(t.read.w) * u64::from(t.read.h) <= max, "{t:?}");
                // The read region is the output grown by the halo, clipped to the image.
                assert_eq!(t.read.x, t.out.x.saturating_sub(halo));
                assert_eq!(t.read.x + t.read.w, (t.out.x + t.out.w + halo).min(w));
                assert_eq!(t.read.y + t.read.h, (t.out.y + t.out.h + halo).min(h));
                for y in t.out.y..t.out.y + t.out.h {
                    for x in t.out.x..t.out.x + t.out.w {
                        covered[(y * w + x) as usize] += 1;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{w}x{h}: every pixel exactly once");
        }
        assert!(matches!(tiles(100, 100, 50, 400, 1 << 20), Err(Error::Unsupported(_))));
    }

    #[test]
    fn eight_bit_samples_upload_as_stored_whole_rows_borrowed() {
        let samples: Vec<u8> = (0..30).collect(); // 5x2, RGB
        let mut scratch = Vec::new();
        let (words, tail) = u8::stage(&samples, 3, 5, Rect { x: 0, y: 0, w: 5, h: 2 }, &mut scratch);
        assert_eq!((words, tail), (&samples[..28], Some([28, 29, 0, 0])));
        assert!(scratch.is_empty());
        let (words, tail) = u8::stage(&samples, 3, 5, Rect { x: 1, y: 0, w: 2, h: 2 }, &mut scratch);
        assert_eq!((words, tail), (&[3u8, 4, 5, 6, 7, 8, 18, 19, 20, 21, 22, 23][..], None));
    }

    #[test]
    fn packing_reads_grey_and_missing_alpha_as_the_cpu_does() {
        let r = Rect { x: 1, y: 0, w: 2, h: 1 };
        let mut out = Vec::new();
        pack(&[1u8, 2, 3], 1, 3, r, &mut out);
        assert_eq!(out, [u32::from_le_bytes([2, 2, 2, 255]), u32::from_le_bytes([3, 3, 3, 255])]);
        pack(&[1u16, 2, 3, 4, 5, 6], 2, 3, r, &mut out);
        assert_eq!(out, [3 | 3 << 16, 3 | 4 << 16, 5 | 5 << 16, 5 | 6 << 16]);
        let tile = Tile { out: Rect { x: 0, y: 0, w: 1, h: 1 }, read: Rect { x: 0, y: 0, w: 1, h: 1 } };
        let mut grey_alpha = [0u16; 2];
        unpack(&[7 | 8 << 16, 9 | 10 << 16], &tile, 1, 2, &mut grey_alpha);
        assert_eq!(grey_alpha, [7, 10]);
    }
}
