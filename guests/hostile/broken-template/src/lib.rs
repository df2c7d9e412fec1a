//! Hostile guest: a template that panics on every kind but `custom`, where it loops
//! forever. The host must fall back to its built-in rendering and still send.

tocsin_guest::world!(template);

struct Broken;

impl Guest for Broken {
    fn render(kind: String, vars: Labels) -> Result<Rendered, String> {
        if kind == "custom" {
            let mut n: u64 = vars.len() as u64;
            loop {
                n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        panic!("template exploded on purpose rendering {kind}");
    }
}

export!(Broken);
