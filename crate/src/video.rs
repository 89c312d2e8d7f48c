//! Writing frames out natively: YUV4MPEG2 (what `ffmpeg`/`mpv` read directly) and PNG.

use std::io::Write;

/// Streams frames into a Y4M file, 4:4:4 so no chroma is lost.
pub struct Y4mWriter<W: Write> {
    out: W,
    width: usize,
    height: usize,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(mut out: W, width: usize, height: usize, fps: usize) -> std::io::Result<Self> {
        writeln!(out, "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C444")?;
        Ok(Self { out, width, height })
    }

    /// Appends one interleaved 8-bit RGB frame, converted with full-range BT.601.
    pub fn write_rgb8(&mut self, rgb: &[u8]) -> std::io::Result<()> {
        let n = self.width * self.height;
        assert_eq!(rgb.len(), n * 3, "frame size");
        let mut planes = vec![0u8; n * 3];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            let u = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
            let v = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
            planes[i] = y.round().clamp(0.0, 255.0) as u8;
            planes[n + i] = u.round().clamp(0.0, 255.0) as u8;
            planes[2 * n + i] = v.round().clamp(0.0, 255.0) as u8;
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&planes)
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_frame_sizes() {
        let mut w = Y4mWriter::new(Vec::new(), 2, 1, 16).unwrap();
        w.write_rgb8(&[255, 255, 255, 0, 0, 0]).unwrap();
        let bytes = w.finish().unwrap();
        let header = b"YUV4MPEG2 W2 H1 F16:1 Ip A1:1 C444\n";
        assert_eq!(&bytes[..header.len()], header);
        assert_eq!(bytes.len(), header.len() + 6 + 6);
        // White: Y 255, U and V neutral; black: Y 0.
        assert_eq!(&bytes[header.len() + 6..], &[255, 0, 128, 128, 128, 128]);
    }
}
