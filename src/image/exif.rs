//! Reads the orientation tag from an EXIF block (a TIFF structure), which is all the pipeline needs.

const ORIENTATION_TAG: u16 = 0x0112;
const SHORT_TYPE: u16 = 3;

/// The EXIF orientation (1 to 8) in `exif`, which may start with the `Exif\0\0` prefix of a JPEG
/// APP1 segment. Anything missing or malformed reads as 1, upright, as Pillow reads it.
pub fn orientation(exif: &[u8]) -> u8 {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    read_orientation(tiff)
        .filter(|value| (1..=8).contains(value))
        .unwrap_or(1)
}

fn read_orientation(tiff: &[u8]) -> Option<u8> {
    let big_endian = match tiff.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let read_u16 = |at: usize| -> Option<u16> {
        let bytes: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        })
    };
    let read_u32 = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };

    // Only the first IFD describes the main image; the orientation tag lives there.
    let ifd = usize::try_from(read_u32(4)?).ok()?;
    let entries = usize::from(read_u16(ifd)?);
    (0..entries).find_map(|index| {
        let entry = ifd + 2 + index * 12;
        if read_u16(entry)? != ORIENTATION_TAG || read_u16(entry + 2)? != SHORT_TYPE {
            return None;
        }
        u8::try_from(read_u16(entry + 8)?).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(big_endian: bool, orientation: u16) -> Vec<u8> {
        let u16_bytes = |value: u16| {
            if big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            }
        };
        let u32_bytes = |value: u32| {
            if big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            }
        };
        let mut out = if big_endian {
            b"MM\0*".to_vec()
        } else {
            b"II*\0".to_vec()
        };
        out.extend(u32_bytes(8));
        out.extend(u16_bytes(2));
        // An unrelated tag first (ImageWidth, LONG), then the orientation.
        out.extend(u16_bytes(0x0100));
        out.extend(u16_bytes(4));
        out.extend(u32_bytes(1));
        out.extend(u32_bytes(640));
        out.extend(u16_bytes(ORIENTATION_TAG));
        out.extend(u16_bytes(SHORT_TYPE));
        out.extend(u32_bytes(1));
        out.extend(u16_bytes(orientation));
        out.extend([0, 0]);
        out.extend(u32_bytes(0));
        out
    }

    #[test]
    fn reads_both_byte_orders_with_and_without_prefix() {
        for big_endian in [true, false] {
            for value in 1..=8 {
                assert_eq!(orientation(&tiff(big_endian, value)), u8::try_from(value).unwrap());
                let mut prefixed = b"Exif\0\0".to_vec();
                prefixed.extend(tiff(big_endian, value));
                assert_eq!(orientation(&prefixed), u8::try_from(value).unwrap());
            }
        }
    }

    #[test]
    fn malformed_or_out_of_range_reads_as_upright() {
        let cases: [&[u8]; 4] = [b"", b"Exif\0\0", b"II*\0\xff\xff\xff\xff", b"XX*\0\x08\0\0\0"];
        for case in cases {
            assert_eq!(orientation(case), 1);
        }
        assert_eq!(orientation(&tiff(false, 9)), 1);
        assert_eq!(orientation(&tiff(true, 0)), 1);
        let truncated = tiff(true, 6);
        assert_eq!(orientation(&truncated[..truncated.len() - 8]), 1);
    }
}
