//! Decodes a progressive JPEG at 1/8 scale from its DC scans, plus the first AC pass of subsampled
//! chroma. At that scale each 8x8 luma block becomes one pixel whose value is the block's DC
//! coefficient, so the luma AC scans, most of the file, are stepped over without being decoded.
//! A subsampled chroma block covers 2x2 (or 2x1) output pixels, whose values need its lowest odd
//! frequencies too.

use memchr::memchr;

use super::jpeg::Segments;
use super::pixels::{Layout, Pixels};
use super::ImageError;

const FORMAT: &str = "JPEG";

struct Component {
    id: u8,
    horizontal: usize,
    vertical: usize,
    quant_table: usize,
    /// The quantisation table in natural order, latched at the component's first DC scan as
    /// libjpeg does.
    quant: Option<[u16; 64]>,
    blocks_wide: usize,
    blocks_high: usize,
    /// Blocks in a non-interleaved scan, which covers the component's own area only.
    own_blocks_wide: usize,
    own_blocks_high: usize,
    dc: Vec<i32>,
    /// For subsampled components, the `SPLIT_FREQUENCIES`² low odd-frequency AC coefficients of each
    /// block (those that tell one half of a block from the other).
    ac: Vec<i16>,
    predictor: i32,
}

impl Component {
    /// How many output pixels one block spans, per axis (2 for subsampled chroma).
    fn split(&self, frame_horizontal: usize, frame_vertical: usize) -> (usize, usize) {
        (frame_horizontal / self.horizontal, frame_vertical / self.vertical)
    }
}

/// The frequencies (per axis) whose average over half a block is not zero: DC and the odd ones.
const SPLIT_FREQUENCIES: [usize; 5] = [0, 1, 3, 5, 7];

/// How many AC coefficients are kept per block of a subsampled component.
const KEPT: usize = SPLIT_FREQUENCIES.len() * SPLIT_FREQUENCIES.len();

/// Zigzag scan position to natural (row-major) coefficient index.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// For a natural coefficient index, its slot among the kept AC coefficients.
fn ac_slot(natural: usize) -> Option<usize> {
    let column = SPLIT_FREQUENCIES.iter().position(|&u| u == natural % 8)?;
    let row = SPLIT_FREQUENCIES.iter().position(|&v| v == natural / 8)?;
    Some(row * SPLIT_FREQUENCIES.len() + column)
}

struct Frame {
    width: usize,
    height: usize,
    max_horizontal: usize,
    max_vertical: usize,
    mcus_wide: usize,
    mcus_high: usize,
    components: Vec<Component>,
}

/// A canonical Huffman table with a lookup for codes up to `LOOKUP_BITS` long.
struct Huffman {
    /// For each `LOOKUP_BITS`-bit prefix: (code length, symbol), or length 0 for longer codes.
    lookup: Vec<(u8, u8)>,
    /// Per code length, the largest code of that length (or -1) and where its symbols start.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

const LOOKUP_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self, ImageError> {
        let mut lookup = vec![(0, 0); 1 << LOOKUP_BITS];
        let mut max_code = [-1; 17];
        let mut offset = [0; 17];
        let (mut code, mut index) = (0_i32, 0_usize);
        for length in 1..=16_u8 {
            let count = usize::from(counts[usize::from(length) - 1]);
            offset[usize::from(length)] = i32::try_from(index).unwrap_or(0) - code;
            for _ in 0..count {
                let symbol = *symbols.get(index).ok_or_else(|| corrupt("a Huffman table is short"))?;
                if u32::from(length) <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - u32::from(length);
                    let first = usize::try_from(code).unwrap_or(0) << shift;
                    for entry in lookup.iter_mut().skip(first).take(1 << shift) {
                        *entry = (length, symbol);
                    }
                }
                code += 1;
                index += 1;
            }
            if count > 0 {
                max_code[usize::from(length)] = code - 1;
            }
            if code > 1 << length {
                return Err(corrupt("a Huffman table has too many codes"));
            }
            code <<= 1;
        }
        Ok(Self {
            lookup,
            max_code,
            offset,
            symbols: symbols.to_vec(),
        })
    }

    fn decode(&self, bits: &mut BitReader<'_>) -> Result<u8, ImageError> {
        bits.refill();
        let peek = usize::try_from(bits.peek(LOOKUP_BITS)).unwrap_or(0);
        let (length, symbol) = self.lookup[peek];
        if length > 0 {
            bits.consume(u32::from(length));
            return Ok(symbol);
        }
        let mut code = 0_i32;
        for length in 1..=16 {
            code = (code << 1) | i32::from(bits.bit());
            if code <= self.max_code[length] {
                let index = usize::try_from(code + self.offset[length]).unwrap_or(usize::MAX);
                return self
                    .symbols
                    .get(index)
                    .copied()
                    .ok_or_else(|| corrupt("bad Huffman code"));
            }
        }
        Err(corrupt("bad Huffman code"))
    }
}

/// Reads entropy-coded bits from one scan's data, with stuffed zero bytes removed. Past a marker
/// or the end it yields zero bits and counts them, so running short can be told from padding.
struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
    buffer: u64,
    count: u32,
    /// Zero bits supplied past the end of the data.
    padding: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            position: 0,
            buffer: 0,
            count: 0,
            padding: 0,
        }
    }

    fn refill(&mut self) {
        while self.count <= 56 {
            let byte = match self.data.get(self.position) {
                Some(0xFF) if self.data.get(self.position + 1) == Some(&0) => {
                    self.position += 2;
                    0xFF
                }
                // A marker (restart or the scan's end) stops the stream until `restart`.
                Some(0xFF) | None => {
                    self.padding += 8;
                    0
                }
                Some(&byte) => {
                    self.position += 1;
                    byte
                }
            };
            self.buffer |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    fn peek(&self, bits: u32) -> u64 {
        self.buffer >> (64 - bits)
    }

    fn consume(&mut self, bits: u32) {
        self.buffer <<= bits;
        self.count -= bits;
    }

    fn bit(&mut self) -> u8 {
        self.refill();
        let bit = u8::from(self.buffer >> 63 == 1);
        self.consume(1);
        bit
    }

    /// Reads `bits` bits (at most 16) as an unsigned number.
    fn bits(&mut self, bits: u32) -> i32 {
        if bits == 0 {
            return 0;
        }
        self.refill();
        let value = i32::try_from(self.peek(bits)).unwrap_or(0);
        self.consume(bits);
        value
    }

    /// Whether bits were consumed beyond the data, that is, the scan is cut short.
    fn overran(&self) -> bool {
        self.padding > self.count
    }

    /// Moves past the restart marker that must come next, discarding the partial byte.
    fn restart(&mut self) -> Result<(), ImageError> {
        if self.overran() {
            return Err(corrupt("a scan ends before its last block"));
        }
        match self.data.get(self.position..self.position + 2) {
            Some([0xFF, 0xD0..=0xD7]) => self.position += 2,
            _ => return Err(corrupt("a restart marker is missing")),
        }
        self.buffer = 0;
        self.count = 0;
        self.padding = 0;
        Ok(())
    }
}

/// The scan parameters the DC decoder uses.
struct Scan {
    /// Component indices and the DC table each uses.
    components: Vec<(usize, usize)>,
    /// The AC table of the first component (AC scans have one component).
    ac_table: usize,
    spectral_start: u8,
    spectral_end: u8,
    approximation_high: u8,
    approximation_low: u8,
}

/// Decodes `data` (a progressive JPEG) at 1/8 scale, or returns `None` when it uses something this
/// decoder leaves to libjpeg-turbo (sampling factors other than 1 and 2, a colour transform other
/// than YCbCr, a missing DC scan).
pub fn decode_dc(data: &[u8]) -> Result<Option<Pixels>, ImageError> {
    let mut frame: Option<Frame> = None;
    let mut quant_tables: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc_tables: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac_tables: [Option<Huffman>; 4] = [None, None, None, None];
    let mut restart_interval = 0_usize;
    let mut rgb_transform = false;
    let mut segments = Segments::new(data);
    loop {
        let (marker, payload) = segments.next_segment()?;
        match marker {
            0xC2 => frame = read_frame(payload)?,
            0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(None),
            0xC4 => read_huffman(payload, &mut dc_tables, &mut ac_tables)?,
            0xDB => read_quant(payload, &mut quant_tables)?,
            0xDD => {
                let [high, low, ..] = *payload else {
                    return Err(corrupt("a restart interval is too short"));
                };
                restart_interval = usize::from(u16::from_be_bytes([high, low]));
            }
            0xEE if payload.starts_with(b"Adobe") => rgb_transform = payload.get(11) == Some(&0),
            0xDA => {
                let Some(frame) = frame.as_mut() else {
                    return Err(corrupt("a scan comes before the frame header"));
                };
                let scan = read_scan(payload, frame)?;
                let start = segments.position();
                let end = entropy_end(data, start)?;
                let scan_data = &data[start..end];
                if scan.spectral_start == 0 {
                    decode_dc_scan(scan_data, frame, &scan, &dc_tables, &quant_tables, restart_interval)?;
                } else if scan.approximation_high == 0 && wants_ac(frame, &scan) {
                    decode_ac_scan(scan_data, frame, &scan, &ac_tables, restart_interval)?;
                }
                segments.seek(end);
            }
            0xD9 => break,
            _ => {}
        }
    }
    let Some(frame) = frame else {
        return Err(corrupt("no frame header"));
    };
    // libjpeg takes three components named R, G and B to be RGB, as it does with Adobe's flag.
    let named_rgb = frame.components.iter().map(|component| component.id).eq(*b"RGB");
    if rgb_transform || named_rgb || frame.components.iter().any(|component| component.quant.is_none()) {
        return Ok(None);
    }
    Ok(Some(assemble(&frame)))
}

fn corrupt(reason: &str) -> ImageError {
    ImageError::corrupt(FORMAT, reason)
}

fn read_frame(payload: &[u8]) -> Result<Option<Frame>, ImageError> {
    let [precision, h0, h1, w0, w1, count, ref rest @ ..] = *payload else {
        return Err(corrupt("the frame header is too short"));
    };
    let count = usize::from(count);
    if precision != 8 || !(count == 1 || count == 3) || rest.len() < count * 3 {
        return Ok(None);
    }
    let (width, height) = (
        usize::from(u16::from_be_bytes([w0, w1])),
        usize::from(u16::from_be_bytes([h0, h1])),
    );
    let mut components = Vec::with_capacity(count);
    for spec in rest.chunks_exact(3).take(count) {
        let (horizontal, vertical) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 15));
        if !matches!(horizontal, 1 | 2) || !matches!(vertical, 1 | 2) || spec[2] > 3 {
            return Ok(None);
        }
        components.push(Component {
            id: spec[0],
            horizontal,
            vertical,
            quant_table: usize::from(spec[2]),
            quant: None,
            blocks_wide: 0,
            blocks_high: 0,
            own_blocks_wide: 0,
            own_blocks_high: 0,
            dc: Vec::new(),
            ac: Vec::new(),
            predictor: 0,
        });
    }
    let max_horizontal = components
        .iter()
        .map(|component| component.horizontal)
        .max()
        .unwrap_or(1);
    let max_vertical = components.iter().map(|component| component.vertical).max().unwrap_or(1);
    let mcus_wide = width.div_ceil(8 * max_horizontal);
    let mcus_high = height.div_ceil(8 * max_vertical);
    for component in &mut components {
        component.blocks_wide = mcus_wide * component.horizontal;
        component.blocks_high = mcus_high * component.vertical;
        component.own_blocks_wide = (width * component.horizontal).div_ceil(max_horizontal).div_ceil(8);
        component.own_blocks_high = (height * component.vertical).div_ceil(max_vertical).div_ceil(8);
        component.dc = vec![0; component.blocks_wide * component.blocks_high];
        if component.split(max_horizontal, max_vertical) != (1, 1) {
            component.ac = vec![0; component.blocks_wide * component.blocks_high * KEPT];
        }
    }
    Ok(Some(Frame {
        width,
        height,
        max_horizontal,
        max_vertical,
        mcus_wide,
        mcus_high,
        components,
    }))
}

fn read_huffman(
    mut payload: &[u8],
    dc_tables: &mut [Option<Huffman>; 4],
    ac_tables: &mut [Option<Huffman>; 4],
) -> Result<(), ImageError> {
    while let [class_and_id, ref rest @ ..] = *payload {
        let counts: [u8; 16] = rest
            .get(..16)
            .and_then(|counts| counts.try_into().ok())
            .ok_or_else(|| corrupt("a Huffman table is short"))?;
        let total: usize = counts.iter().map(|&count| usize::from(count)).sum();
        let symbols = rest
            .get(16..16 + total)
            .ok_or_else(|| corrupt("a Huffman table is short"))?;
        let id = usize::from(class_and_id & 15);
        let tables = if class_and_id >> 4 == 0 {
            &mut *dc_tables
        } else {
            &mut *ac_tables
        };
        if let Some(slot) = tables.get_mut(id) {
            *slot = Some(Huffman::new(&counts, symbols)?);
        }
        payload = &rest[16 + total..];
    }
    Ok(())
}

fn read_quant(mut payload: &[u8], tables: &mut [Option<[u16; 64]>; 4]) -> Result<(), ImageError> {
    while let [precision_and_id, ref rest @ ..] = *payload {
        let id = usize::from(precision_and_id & 15);
        let sixteen_bit = precision_and_id >> 4 != 0;
        let size = if sixteen_bit { 128 } else { 64 };
        let table = rest
            .get(..size)
            .ok_or_else(|| corrupt("a quantisation table is short"))?;
        let mut natural = [0; 64];
        for (position, &index) in ZIGZAG.iter().enumerate() {
            natural[index] = if sixteen_bit {
                u16::from_be_bytes([table[2 * position], table[2 * position + 1]])
            } else {
                u16::from(table[position])
            };
        }
        if id < 4 {
            tables[id] = Some(natural);
        }
        payload = &rest[size..];
    }
    Ok(())
}

fn read_scan(payload: &[u8], frame: &Frame) -> Result<Scan, ImageError> {
    let [count, ref rest @ ..] = *payload else {
        return Err(corrupt("a scan header is too short"));
    };
    let count = usize::from(count);
    let specs = rest
        .get(..count * 2)
        .ok_or_else(|| corrupt("a scan header is too short"))?;
    let [spectral_start, spectral_end, approximation] = *rest
        .get(count * 2..count * 2 + 3)
        .ok_or_else(|| corrupt("a scan header is too short"))?
    else {
        return Err(corrupt("a scan header is too short"));
    };
    let mut components = Vec::with_capacity(count);
    for spec in specs.chunks_exact(2) {
        let index = frame
            .components
            .iter()
            .position(|component| component.id == spec[0])
            .ok_or_else(|| corrupt("a scan names an unknown component"))?;
        components.push((index, usize::from(spec[1] >> 4) & 3));
    }
    if components.is_empty() {
        return Err(corrupt("a scan has no components"));
    }
    let ac_table = usize::from(specs[1] & 3);
    Ok(Scan {
        components,
        ac_table,
        spectral_start,
        spectral_end,
        approximation_high: approximation >> 4,
        approximation_low: approximation & 15,
    })
}

/// Where the entropy-coded data starting at `start` ends: the first marker other than a restart.
fn entropy_end(data: &[u8], start: usize) -> Result<usize, ImageError> {
    let mut at = start;
    loop {
        let found = memchr(0xFF, data.get(at..).unwrap_or_default())
            .ok_or_else(|| corrupt("the data ends in the middle of a scan"))?;
        at += found;
        match data.get(at + 1) {
            Some(0x00 | 0xD0..=0xD7) => at += 2,
            // Fill bytes may precede a marker.
            Some(0xFF) => at += 1,
            Some(_) => return Ok(at),
            None => return Err(corrupt("the data ends in the middle of a scan")),
        }
    }
}

fn decode_dc_scan(
    data: &[u8],
    frame: &mut Frame,
    scan: &Scan,
    tables: &[Option<Huffman>; 4],
    quant_tables: &[Option<[u16; 64]>; 4],
    restart_interval: usize,
) -> Result<(), ImageError> {
    let refining = scan.approximation_high != 0;
    let shift = scan.approximation_low;
    for &(index, table) in &scan.components {
        let component = &mut frame.components[index];
        component.predictor = 0;
        if !refining {
            if tables[table].is_none() {
                return Err(corrupt("a scan uses a Huffman table that is not defined"));
            }
            if component.quant.is_none() {
                component.quant = quant_tables[component.quant_table];
                if component.quant.is_none() {
                    return Err(corrupt("a component uses a quantisation table that is not defined"));
                }
            }
        }
    }

    // An interleaved scan walks MCUs of every component's blocks; a single-component scan walks
    // that component's own blocks in raster order.
    let units: Vec<(usize, usize)> = if scan.components.len() == 1 {
        let component = &frame.components[scan.components[0].0];
        (0..component.own_blocks_high)
            .flat_map(|row| (0..component.own_blocks_wide).map(move |column| (column, row)))
            .collect()
    } else {
        (0..frame.mcus_high)
            .flat_map(|row| (0..frame.mcus_wide).map(move |column| (column, row)))
            .collect()
    };
    let mut bits = BitReader::new(data);
    for (unit, &(column, row)) in units.iter().enumerate() {
        if restart_interval > 0 && unit > 0 && unit % restart_interval == 0 {
            bits.restart()?;
            for &(index, _) in &scan.components {
                frame.components[index].predictor = 0;
            }
        }
        for &(index, table) in &scan.components {
            let component = &mut frame.components[index];
            let (wide, high) = if scan.components.len() == 1 {
                (1, 1)
            } else {
                (component.horizontal, component.vertical)
            };
            for block_row in 0..high {
                for block_column in 0..wide {
                    let at = (row * high + block_row) * component.blocks_wide + column * wide + block_column;
                    if refining {
                        if bits.bit() == 1 {
                            component.dc[at] |= 1 << shift;
                        }
                    } else {
                        let Some(huffman) = &tables[table] else {
                            return Err(corrupt("a Huffman table is missing"));
                        };
                        let size = huffman.decode(&mut bits)?;
                        if size > 16 {
                            return Err(corrupt("a DC difference is too large"));
                        }
                        let difference = extend(bits.bits(u32::from(size)), size);
                        component.predictor = component.predictor.wrapping_add(difference);
                        component.dc[at] = component.predictor.wrapping_shl(u32::from(shift));
                    }
                }
            }
        }
    }
    if bits.overran() {
        return Err(corrupt("a scan ends before its last block"));
    }
    Ok(())
}

/// Whether an AC scan carries coefficients the 1/8-scale image needs: a first pass over a
/// subsampled component that reaches the low odd frequencies. Refinement passes only add the least
/// significant bits, which change those pixels by a fraction of a level, and are skipped.
fn wants_ac(frame: &Frame, scan: &Scan) -> bool {
    let [(index, _)] = scan.components.as_slice() else {
        return false;
    };
    !frame.components[*index].ac.is_empty() && scan.spectral_start <= 40
}

/// Decodes a first AC pass (G.1.2.2) of one component, keeping the coefficients that `ac_slot` keeps.
fn decode_ac_scan(
    data: &[u8],
    frame: &mut Frame,
    scan: &Scan,
    tables: &[Option<Huffman>; 4],
    restart_interval: usize,
) -> Result<(), ImageError> {
    let Some(huffman) = &tables[scan.ac_table] else {
        return Err(corrupt("a scan uses a Huffman table that is not defined"));
    };
    let (start, end) = (usize::from(scan.spectral_start), usize::from(scan.spectral_end));
    if end > 63 || start > end {
        return Err(corrupt("a scan has an invalid spectral range"));
    }
    let component = &mut frame.components[scan.components[0].0];
    let mut bits = BitReader::new(data);
    let mut end_of_band_run = 0_u32;
    let blocks = component.own_blocks_wide * component.own_blocks_high;
    for unit in 0..blocks {
        if restart_interval > 0 && unit > 0 && unit % restart_interval == 0 {
            bits.restart()?;
            end_of_band_run = 0;
        }
        if end_of_band_run > 0 {
            end_of_band_run -= 1;
            continue;
        }
        let (row, column) = (unit / component.own_blocks_wide, unit % component.own_blocks_wide);
        let block = (row * component.blocks_wide + column) * KEPT;
        let mut position = start;
        while position <= end {
            let symbol = huffman.decode(&mut bits)?;
            let (run, size) = (usize::from(symbol >> 4), symbol & 15);
            if size == 0 {
                if run < 15 {
                    end_of_band_run = (1 << run) - 1;
                    if run > 0 {
                        end_of_band_run += u32::try_from(bits.bits(u32::try_from(run).unwrap_or(0))).unwrap_or(0);
                    }
                    break;
                }
                position += 16;
                continue;
            }
            position += run;
            let natural = *ZIGZAG
                .get(position)
                .ok_or_else(|| corrupt("an AC coefficient is out of range"))?;
            let value = extend(bits.bits(u32::from(size)), size) << scan.approximation_low;
            if let Some(slot) = ac_slot(natural) {
                component.ac[block + slot] = i16::try_from(value).unwrap_or(0);
            }
            position += 1;
        }
    }
    if bits.overran() {
        return Err(corrupt("a scan ends before its last block"));
    }
    Ok(())
}

/// JPEG's sign extension of a `size`-bit difference (F.2.2.1).
fn extend(value: i32, size: u8) -> i32 {
    if size == 0 {
        0
    } else if value < 1 << (size - 1) {
        value - (1 << size) + 1
    } else {
        value
    }
}

/// Builds the 1/8-scale image: coefficients to samples on the luma grid, YCbCr to RGB.
fn assemble(frame: &Frame) -> Pixels {
    let width = frame.width.div_ceil(8);
    let height = frame.height.div_ceil(8);
    let planes: Vec<Vec<u8>> = frame
        .components
        .iter()
        .map(|component| {
            let (split_x, split_y) = component.split(frame.max_horizontal, frame.max_vertical);
            let plane = samples(component, split_x, split_y);
            crop(&plane, component.blocks_wide * split_x, (width, height))
        })
        .collect();
    let to_u32 = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
    if let [luma] = planes.as_slice() {
        return Pixels {
            width: to_u32(width),
            height: to_u32(height),
            layout: Layout::Gray,
            data: luma.clone(),
        };
    }
    let mut data = Vec::with_capacity(width * height * 3);
    for ((&y, &cb), &cr) in planes[0].iter().zip(&planes[1]).zip(&planes[2]) {
        data.extend(ycbcr_to_rgb(y, cb, cr));
    }
    Pixels {
        width: to_u32(width),
        height: to_u32(height),
        layout: Layout::Rgb,
        data,
    }
}

/// The samples of a component on the output grid, `split_x` x `split_y` per block. With no split,
/// a block's sample is its DC term as libjpeg's 1x1 inverse DCT gives it (DC times quantiser over 8,
/// rounded). With a split, each sample is the mean of the block's inverse DCT over that part of the
/// block, which depends on DC and the odd frequencies only.
fn samples(component: &Component, split_x: usize, split_y: usize) -> Vec<u8> {
    let quant = component.quant.unwrap_or([1; 64]);
    if (split_x, split_y) == (1, 1) || component.ac.is_empty() {
        let plane: Vec<u8> = component
            .dc
            .iter()
            .map(|&dc| {
                let value = ((dc.wrapping_mul(i32::from(quant[0])) + 4) >> 3) + 128;
                u8::try_from(value.clamp(0, 255)).unwrap_or(0)
            })
            .collect();
        return replicate(&plane, component.blocks_wide, split_x, split_y);
    }

    // Per frequency (indexing SPLIT_FREQUENCIES), its mean over the first half of a block; the
    // second half has the opposite sign for odd frequencies. An unsplit axis keeps DC only.
    let half_means: Vec<f32> = SPLIT_FREQUENCIES
        .iter()
        .map(|&frequency| {
            if frequency == 0 {
                std::f32::consts::FRAC_1_SQRT_2 / 2.0
            } else {
                (0..4_u8)
                    .map(|x| {
                        (f32::from(2 * x + 1) * f32::from(u8::try_from(frequency).unwrap_or(0)) * std::f32::consts::PI
                            / 16.0)
                            .cos()
                    })
                    .sum::<f32>()
                    / 8.0
            }
        })
        .collect();
    let weight = |index: usize, half: usize, split: usize| -> f32 {
        match (index, split) {
            (0, _) => half_means[0],
            (_, 1) => 0.0,
            _ if half == 0 => half_means[index],
            _ => -half_means[index],
        }
    };
    // One weight per kept coefficient and part of a block: the product of the two axes' means and
    // the quantiser, so that each sample is a dot product.
    let count = SPLIT_FREQUENCIES.len();
    let parts: Vec<(usize, usize)> = (0..split_y).flat_map(|y| (0..split_x).map(move |x| (x, y))).collect();
    let weights: Vec<[f32; KEPT]> = parts
        .iter()
        .map(|&(half_x, half_y)| {
            std::array::from_fn(|slot| {
                let (row, column) = (slot / count, slot % count);
                let natural = SPLIT_FREQUENCIES[row] * 8 + SPLIT_FREQUENCIES[column];
                f32::from(quant[natural]) * weight(column, half_x, split_x) * weight(row, half_y, split_y)
            })
        })
        .collect();

    let stride = component.blocks_wide * split_x;
    let mut plane = vec![0; stride * component.blocks_high * split_y];
    let mut coefficients = [0.0_f32; KEPT];
    for (block, &dc) in component.dc.iter().enumerate() {
        let kept = &component.ac[block * KEPT..(block + 1) * KEPT];
        for (value, &coefficient) in coefficients.iter_mut().zip(kept) {
            *value = f32::from(coefficient);
        }
        // DC fits in 16 bits for 8-bit samples, so f32 holds it exactly.
        coefficients[0] = f32::from(i16::try_from(dc).unwrap_or(0));
        let (block_row, block_column) = (block / component.blocks_wide, block % component.blocks_wide);
        for (&(half_x, half_y), weights) in parts.iter().zip(&weights) {
            let value: f32 = 128.0 + coefficients.iter().zip(weights).map(|(c, w)| c * w).sum::<f32>();
            let at = (block_row * split_y + half_y) * stride + block_column * split_x + half_x;
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "clamped to 0..=255"
            )]
            let sample = value.round().clamp(0.0, 255.0) as u8;
            plane[at] = sample;
        }
    }
    plane
}

/// Repeats each sample `factor_x` x `factor_y` times.
fn replicate(plane: &[u8], stride: usize, factor_x: usize, factor_y: usize) -> Vec<u8> {
    if (factor_x, factor_y) == (1, 1) {
        return plane.to_vec();
    }
    let mut out = Vec::with_capacity(plane.len() * factor_x * factor_y);
    for row in plane.chunks_exact(stride.max(1)) {
        let wide: Vec<u8> = row
            .iter()
            .flat_map(|&sample| std::iter::repeat_n(sample, factor_x))
            .collect();
        for _ in 0..factor_y {
            out.extend_from_slice(&wide);
        }
    }
    out
}

/// The top-left `width` x `height` of a plane `stride` samples wide.
fn crop(plane: &[u8], stride: usize, (width, height): (usize, usize)) -> Vec<u8> {
    plane
        .chunks_exact(stride.max(1))
        .take(height)
        .flat_map(|row| &row[..width.min(row.len())])
        .copied()
        .collect()
}

/// JFIF's YCbCr to RGB, in 16-bit fixed point as libjpeg computes it.
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const HALF: i32 = 1 << 15;
    let (y, cb, cr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
    let red = y + ((91_881 * cr + HALF) >> 16);
    let green = y + ((-22_554 * cb - 46_802 * cr + HALF) >> 16);
    let blue = y + ((116_130 * cb + HALF) >> 16);
    [red, green, blue].map(|value| u8::try_from(value.clamp(0, 255)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_follows_the_standard() {
        let cases = [
            (0, 0, 0),
            (0, 1, -1),
            (1, 1, 1),
            (0, 2, -3),
            (1, 2, -2),
            (2, 2, 2),
            (3, 2, 3),
            (0, 11, -2047),
        ];
        for (value, size, expected) in cases {
            assert_eq!(extend(value, size), expected, "{value} in {size} bits");
        }
    }

    #[test]
    fn huffman_decodes_short_and_long_codes() {
        // Symbols 0..=2 with lengths 2, 2 and 12: codes 00, 01 and 100000000000.
        let mut counts = [0; 16];
        counts[1] = 2;
        counts[11] = 1;
        let table = Huffman::new(&counts, &[5, 6, 7]).unwrap();
        let data = [0b0001_1000, 0b0000_0000, 0b0011_1111];
        let mut bits = BitReader::new(&data);
        assert_eq!(table.decode(&mut bits).unwrap(), 5);
        assert_eq!(table.decode(&mut bits).unwrap(), 6);
        assert_eq!(table.decode(&mut bits).unwrap(), 7);
        assert!(!bits.overran());
    }

    #[test]
    fn bit_reader_unstuffs_and_stops_at_markers() {
        let data = [0xFF, 0x00, 0xAB, 0xFF, 0xD9];
        let mut bits = BitReader::new(&data);
        assert_eq!(bits.bits(8), 0xFF);
        assert_eq!(bits.bits(8), 0xAB);
        assert!(!bits.overran());
        assert_eq!(bits.bits(8), 0);
        assert!(bits.overran());
    }

    #[test]
    fn entropy_end_steps_over_stuffing_and_restarts() {
        let data = [1, 0xFF, 0x00, 2, 0xFF, 0xD3, 3, 0xFF, 0xFF, 0xDA, 0];
        assert_eq!(entropy_end(&data, 0).unwrap(), 8);
        assert!(entropy_end(&data[..6], 0).is_err());
    }

    #[test]
    fn grey_and_primaries_convert() {
        assert_eq!(ycbcr_to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(ycbcr_to_rgb(76, 85, 255), [254, 0, 0]);
    }

    /// A smooth test picture, encoded by libjpeg-turbo as progressive or baseline.
    fn encoded(width: usize, height: usize, progressive: bool, subsampling: turbojpeg::Subsamp) -> Vec<u8> {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let (x_f, y_f) = (
                    f64::from(u32::try_from(x).unwrap()),
                    f64::from(u32::try_from(y).unwrap()),
                );
                let wave = (x_f / 23.0).sin() * (y_f / 17.0).cos() * 60.0;
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "clamped to 0..=255"
                )]
                let channel = |base: usize| (f64::from(u32::try_from(base).unwrap()) + wave).clamp(0.0, 255.0) as u8;
                pixels.extend([channel(x * 200 / width), channel(128), channel(y * 200 / height)]);
            }
        }
        let image = turbojpeg::Image {
            pixels: pixels.as_slice(),
            width,
            pitch: width * 3,
            height,
            format: turbojpeg::PixelFormat::RGB,
        };
        let mut compressor = turbojpeg::Compressor::new().unwrap();
        compressor.set_progressive(progressive).unwrap();
        compressor.set_subsamp(subsampling).unwrap();
        compressor.set_quality(90).unwrap();
        compressor.compress_to_vec(image).unwrap()
    }

    fn libjpeg_eighth(jpeg: &[u8]) -> Vec<u8> {
        let mut decompressor = turbojpeg::Decompressor::new().unwrap();
        decompressor
            .set_scaling_factor(turbojpeg::ScalingFactor::ONE_EIGHTH)
            .unwrap();
        let header = decompressor
            .read_header(jpeg)
            .unwrap()
            .scaled(turbojpeg::ScalingFactor::ONE_EIGHTH);
        let mut out = vec![0; header.width * header.height * 3];
        let image = turbojpeg::Image {
            pixels: out.as_mut_slice(),
            width: header.width,
            pitch: header.width * 3,
            height: header.height,
            format: turbojpeg::PixelFormat::RGB,
        };
        decompressor.decompress(jpeg, image).unwrap();
        out
    }

    #[test]
    fn dc_scans_give_libjpegs_eighth_scale_image() {
        // Luma and unsubsampled chroma are exact. libjpeg gets 4:2:0 chroma from a reduced 2x2
        // inverse DCT, close to the half-block means used here; for 4:2:2 it upsamples DC alone,
        // where the half-block means keep more detail.
        let cases = [
            (turbojpeg::Subsamp::None, 0),
            (turbojpeg::Subsamp::Sub2x2, 4),
            (turbojpeg::Subsamp::Sub2x1, 10),
        ];
        for (subsampling, limit) in cases {
            let jpeg = encoded(203, 117, true, subsampling);
            let ours = decode_dc(&jpeg).unwrap().unwrap();
            assert_eq!((ours.width, ours.height), (26, 15));
            let reference = libjpeg_eighth(&jpeg);
            let worst = ours
                .data
                .iter()
                .zip(&reference)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst <= limit, "{subsampling:?}: largest difference {worst}");
        }
    }

    #[test]
    fn baseline_files_are_left_to_libjpeg() {
        let jpeg = encoded(64, 64, false, turbojpeg::Subsamp::Sub2x2);
        assert!(decode_dc(&jpeg).unwrap().is_none());
    }

    #[test]
    fn truncated_progressive_files_are_errors() {
        let jpeg = encoded(203, 117, true, turbojpeg::Subsamp::Sub2x2);
        for cut in [jpeg.len() / 3, jpeg.len() - 10, jpeg.len() - 2] {
            assert!(
                matches!(decode_dc(&jpeg[..cut]), Err(ImageError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn replicate_and_crop_keep_the_grid() {
        let out = replicate(&[1, 2, 3, 4], 2, 2, 2);
        assert_eq!(out, vec![1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
        assert_eq!(crop(&out, 4, (3, 2)), vec![1, 1, 2, 1, 1, 2]);
    }
}
