//! Reading back the QR codes the server draws: the SVG's modules are rasterised and decoded
//! with an independent QR decoder, so a test sees what a phone would read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The text of the QR code drawn in `svg` (as `qrcode`'s SVG renderer writes it: one path
/// of `M{x} {y}h{w}v{h}H{x}V{y}` rectangles on a light background).
pub fn decode(svg: &str) -> String {
    let size = attribute(svg, "width");
    let height = attribute(svg, "height");
    assert_eq!(size, height, "a QR code is square");
    let path_start = svg.find(" d=\"").expect("the drawing has a path") + 4;
    let path = &svg[path_start..];
    let path = &path[..path.find('"').unwrap()];
    let mut dark = vec![false; size * size];
    for rect in path.split('M').filter(|part| !part.is_empty()) {
        let numbers: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(|part| part.parse().unwrap())
            .collect();
        let (left, top, width, height) = (numbers[0], numbers[1], numbers[2], numbers[3]);
        for y in top..top + height {
            for x in left..left + width {
                dark[y * size + x] = true;
            }
        }
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| {
        if dark[y * size + x] {
            0
        } else {
            255
        }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the drawing");
    grids[0].decode().expect("the QR code decodes").1
}

fn attribute(svg: &str, name: &str) -> usize {
    let marker = format!(" {name}=\"");
    let start = svg
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {svg:.200}"))
        + marker.len();
    let rest = &svg[start..];
    rest[..rest.find('"').unwrap()].parse().unwrap()
}
