//! How big a guest's answer is, for the output cap. Counts the bytes of strings and
//! payloads plus a fixed cost per number, which is what the host will copy and keep.

use tocsin_bindings::types::{Health, Ingested, Rendered, Sample, Signal};

pub(crate) trait OutputSize {
    fn output_size(&self) -> usize;
}

fn labels(l: &[(String, String)]) -> usize {
    l.iter().map(|(k, v)| k.len() + v.len()).sum()
}

impl OutputSize for Sample {
    fn output_size(&self) -> usize {
        self.name.len() + labels(&self.labels) + 16
    }
}

impl OutputSize for Signal {
    fn output_size(&self) -> usize {
        labels(&self.key)
            + self.summary.len()
            + self.description.len()
            + labels(&self.annotations)
            + 16
    }
}

impl OutputSize for Health {
    fn output_size(&self) -> usize {
        self.summary.len()
            + 8
            + self
                .factors
                .iter()
                .map(|f| f.name.len() + f.detail.len() + 16)
                .sum::<usize>()
    }
}

impl OutputSize for Rendered {
    fn output_size(&self) -> usize {
        self.subject.len() + self.html.len() + self.text.len()
    }
}

impl OutputSize for Ingested {
    fn output_size(&self) -> usize {
        match self {
            Ingested::Sample(s) => s.output_size(),
            Ingested::Log(l) => l.source.len() + l.message.len() + labels(&l.fields) + 16,
            Ingested::Heartbeat(h) => h.client_id.len() + 8,
        }
    }
}

impl<T: OutputSize> OutputSize for Vec<T> {
    fn output_size(&self) -> usize {
        self.iter().map(OutputSize::output_size).sum()
    }
}
