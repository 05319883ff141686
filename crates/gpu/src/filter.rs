//! Running a chain on the GPU: the image is cut into tiles that fit the device (each with the
//! chain's halo around it), each tile's samples are packed (RGBA8 in one `u32`, RGBA16 in two),
//! uploaded, run through the program's dispatches, read back and unpacked into the output.
//! The buffers and bind groups live in a [`Pool`] and are reused from image to image, growing
//! only for a larger tile.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::DynamicImage;
use pixelflow_imaging::filter::Sample;
use pixelflow_imaging::FilterChain;
use rayon::prelude::*;

use crate::context::{GpuContext, PARAMS_SLOT};
use crate::error::{Error, Result};
use crate::program::{Kernel, Program};

/// The most pixels a tile holds (halo included) unless the device allows fewer: 16 MP, so a
/// tile's buffers stay under about 700 MB.
pub const DEFAULT_TILE_PIXELS: u64 = 1 << 24;

/// Invocations a workgroup side (`@workgroup_size(16, 16, 1)` in every shader).
const WORKGROUP: u32 = 16;

/// How [`GpuFilter`] runs.
#[derive(Debug, Clone, Default)]
pub struct GpuFilterOptions {
    /// The most pixels a tile may hold, halo included (at most what the device allows;
    /// default [`DEFAULT_TILE_PIXELS`]). Tests force a small one to exercise tiling.
    pub max_tile_pixels: Option<u64>,
}

/// Where the time of one image went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Packing samples and unpacking results on the CPU.
    pub pack: Duration,
    /// Copying the packed samples to the device.
    pub upload: Duration,
    /// The filter work: every dispatch of every tile.
    pub compute: Duration,
    /// Copying results back and mapping them.
    pub readback: Duration,
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
/// when it fits, and at most `max_side` pixels a side.
pub(crate) fn tiles(width: u32, height: u32, halo: u32, max_pixels: u64, max_side: u32) -> Result<Vec<Tile>> {
    let whole = Rect { x: 0, y: 0, w: width, h: height };
    if u64::from(width) * u64::from(height) <= max_pixels && width <= max_side && height <= max_side {
        return Ok(vec![Tile { out: whole, read: whole }]);
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
    let (tw, th) = (tw as u32, th as u32);
    let mut out = Vec::new();
    for y in (0..height).step_by(th as usize) {
        for x in (0..width).step_by(tw as usize) {
            let o = Rect { x, y, w: tw.min(width - x), h: th.min(height - y) };
            let (x0, y0) = (x.saturating_sub(halo), y.saturating_sub(halo));
            let (x1, y1) = ((x + o.w).saturating_add(halo).min(width), (y + o.h).saturating_add(halo).min(height));
            out.push(Tile { out: o, read: Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } });
        }
    }
    Ok(out)
}

/// A stored sample type as the kernels read it: 8 bits (one `u32` a pixel) or 16 (two).
trait Packed: Sample {
    const WORDS: usize;
    const MAX: Self;
    fn pack(px: [Self; 4], out: &mut [u32]);
    fn unpack(raw: &[u32]) -> [Self; 4];
}

impl Packed for u8 {
    const WORDS: usize = 1;
    const MAX: u8 = u8::MAX;

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
/// and are never shrunk. The two bind groups (working buffer 0 or 1 as the image) are rebuilt
/// only when a buffer is replaced.
pub(crate) struct Pool {
    raw_in: wgpu::Buffer,
    raw_out: wgpu::Buffer,
    work: [wgpu::Buffer; 2],
    staging: wgpu::Buffer,
    params: wgpu::Buffer,
    data: wgpu::Buffer,
    bind_groups: Option<[wgpu::BindGroup; 2]>,
    /// The packed samples of the tile being uploaded.
    packed: Vec<u32>,
}

fn buffer(device: &wgpu::Device, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: size.max(16), usage, mapped_at_creation: false })
}

const STORAGE_IN: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST);
const STORAGE_OUT: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC);
const STAGING: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);
const UNIFORM: wgpu::BufferUsages = wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

impl Pool {
    pub(crate) fn new(device: &wgpu::Device) -> Pool {
        Pool {
            raw_in: buffer(device, "raw in", 16, STORAGE_IN),
            raw_out: buffer(device, "raw out", 16, STORAGE_OUT),
            work: [buffer(device, "work 0", 16, wgpu::BufferUsages::STORAGE), buffer(device, "work 1", 16, wgpu::BufferUsages::STORAGE)],
            staging: buffer(device, "staging", 16, STAGING),
            params: buffer(device, "params", PARAMS_SLOT, UNIFORM),
            data: buffer(device, "data", 16, STORAGE_IN),
            bind_groups: None,
            packed: Vec::new(),
        }
    }

    /// Grows the buffers to hold a tile of `pixels` (`raw` bytes a pixel; working images only
    /// when `working`), `dispatches` parameter slots and `data` floats.
    fn reserve(&mut self, ctx: &GpuContext, pixels: u64, raw: u64, working: bool, dispatches: usize, data: usize) {
        let device = &ctx.device;
        let most = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        let grow = |b: &mut wgpu::Buffer, size: u64, label: &str, usage| {
            if b.size() < size {
                // A quarter more, so a slightly larger next image does not reallocate again
                // (whole parameter slots, so also a multiple of 4 as storage bindings need),
                // within what a binding may cover.
                *b = buffer(device, label, (size + size / 4).next_multiple_of(PARAMS_SLOT).min(most).max(size), usage);
                true
            } else {
                false
            }
        };
        let mut changed = grow(&mut self.raw_in, pixels * raw, "raw in", STORAGE_IN);
        changed |= grow(&mut self.raw_out, pixels * raw, "raw out", STORAGE_OUT);
        grow(&mut self.staging, pixels * raw, "staging", STAGING);
        if working {
            let [w0, w1] = &mut self.work;
            changed |= grow(w0, pixels * 16, "work 0", wgpu::BufferUsages::STORAGE);
            changed |= grow(w1, pixels * 16, "work 1", wgpu::BufferUsages::STORAGE);
        }
        changed |= grow(&mut self.params, dispatches as u64 * PARAMS_SLOT, "params", UNIFORM);
        changed |= grow(&mut self.data, data as u64 * 4, "data", STORAGE_IN);
        if changed || self.bind_groups.is_none() {
            fn entry(binding: u32, b: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
                wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() }
            }
            let group = |image: usize| {
                let params = wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &self.params, offset: 0, size: wgpu::BufferSize::new(64) }),
                };
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("filter"),
                    layout: &ctx.layout,
                    entries: &[
                        params,
                        entry(1, &self.data),
                        entry(2, &self.raw_in),
                        entry(3, &self.raw_out),
                        entry(4, &self.work[image]),
                        entry(5, &self.work[1 - image]),
                    ],
                })
            };
            self.bind_groups = Some([group(0), group(1)]);
        }
    }
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
        let program = Program::new(chain.compiled());
        let max_side = self.ctx.limits.max_compute_workgroups_per_dimension.saturating_mul(WORKGROUP);
        let tiles = tiles(width, height, program.halo, self.max_tile_pixels(program.needs_working), max_side)?;
        let largest = tiles.iter().map(|t| u64::from(t.read.w) * u64::from(t.read.h)).max().unwrap_or(1);
        let raw_bytes = (T::WORDS * 4) as u64;

        let device = &self.ctx.device;
        // Allocation failures and refused commands are caught here and become errors (the
        // caller then runs the CPU path), never panics.
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut pool = self.ctx.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pool.reserve(self.ctx, largest, raw_bytes, program.needs_working, program.dispatches.len(), program.data.len().max(1));
        let data: &[f32] = if program.data.is_empty() { &[0.0] } else { &program.data };
        self.ctx.queue.write_buffer(&pool.data, 0, bytemuck::cast_slice(data));
        let mut result = Ok(());
        for tile in &tiles {
            if should_stop() {
                result = Err(Error::Cancelled);
                break;
            }
            result = self.run_tile::<T>(&mut pool, &program, tile, (width, height), samples, channels, out_channels, &mut out, &mut timings);
            if result.is_err() {
                break;
            }
        }
        drop(pool);
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

    #[allow(clippy::too_many_arguments)]
    fn run_tile<T: Packed>(
        &self,
        pool: &mut Pool,
        program: &Program,
        tile: &Tile,
        full: (u32, u32),
        samples: &[T],
        channels: usize,
        out_channels: usize,
        out: &mut [T],
        timings: &mut Timings,
    ) -> Result<()> {
        let (device, queue) = (&self.ctx.device, &self.ctx.queue);
        let r = tile.read;
        let wait = || device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| Error::Device(e.to_string()));

        let start = Instant::now();
        let mut packed = std::mem::take(&mut pool.packed);
        pack(samples, channels, full.0, r, &mut packed);
        timings.pack += start.elapsed();

        let start = Instant::now();
        queue.write_buffer(&pool.raw_in, 0, bytemuck::cast_slice(&packed));
        pool.packed = packed;
        let mut params = vec![0u8; program.dispatches.len() * PARAMS_SLOT as usize];
        for (d, slot) in program.dispatches.iter().zip(params.chunks_exact_mut(PARAMS_SLOT as usize)) {
            let p = d.params((r.w, r.h), full, (r.x, r.y), T::WORDS == 2);
            slot[..64].copy_from_slice(bytemuck::cast_slice(&p));
        }
        queue.write_buffer(&pool.params, 0, &params);
        queue.submit(std::iter::empty::<wgpu::CommandBuffer>());
        wait()?;
        timings.upload += start.elapsed();

        let start = Instant::now();
        let bind_groups = pool.bind_groups.as_ref().expect("reserve builds the bind groups");
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("filter") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("filter"), timestamp_writes: None });
            let groups = (r.w.div_ceil(WORKGROUP), r.h.div_ceil(WORKGROUP));
            for (i, d) in program.dispatches.iter().enumerate() {
                let p = &self.ctx.pipelines;
                pass.set_pipeline(match d.kernel {
                    Kernel::Pixel => &p.pixel,
                    Kernel::BlurRows => &p.blur_rows,
                    Kernel::BlurColumns => &p.blur_columns,
                    Kernel::Convolve => &p.convolve,
                });
                pass.set_bind_group(0, &bind_groups[d.image], &[(i as u64 * PARAMS_SLOT) as u32]);
                pass.dispatch_workgroups(groups.0, groups.1, 1);
            }
        }
        queue.submit([encoder.finish()]);
        wait()?;
        timings.compute += start.elapsed();

        let start = Instant::now();
        let bytes = u64::from(r.w) * u64::from(r.h) * (T::WORDS as u64) * 4;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(&pool.raw_out, 0, &pool.staging, 0, bytes);
        queue.submit([encoder.finish()]);
        let slice = pool.staging.slice(..bytes);
        let (sender, receiver) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |mapped| {
            let _ = sender.send(mapped);
        });
        wait()?;
        match receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Run(format!("reading the result back: {e}"))),
            Err(_) => return Err(Error::Device("the device did not answer the readback".into())),
        }
        {
            let view = slice.get_mapped_range().map_err(|e| Error::Run(format!("reading the result back: {e}")))?;
            timings.readback += start.elapsed();
            let start = Instant::now();
            unpack::<T>(bytemuck::cast_slice(&view), tile, full.0, out_channels, out);
            timings.pack += start.elapsed();
        }
        pool.staging.unmap();
        Ok(())
    }
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
