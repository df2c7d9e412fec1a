//! Queries answered from rollups: step aggregates (min/max/avg/sum/count/last over each
//! step) and step-aligned `query_range`. Closed windows come from the rollup tables, the
//! in-memory head is bucketed on the fly: the two never overlap, since a checkpoint writes
//! a chunk's rollups in the same transaction that moves its points out of the head.

use redb::ReadableTable;

use crate::error::StoreError;
use crate::rollup::{self, Bucket, Column, Resolution, RollupAgg};
use crate::series::SeriesKey;
use crate::store::{SeriesData, Store, check_steps, decode_into, rollup_table, window};
use crate::tables::CHUNKS;

impl Store {
    /// Call `f` with every selected series and its `res` buckets ending in `[start, end]`,
    /// ascending, with the `want`ed columns filled.
    fn scan_rollup(
        &self,
        selector: &str,
        res: Resolution,
        start: i64,
        end: i64,
        want: &[Column],
        mut f: impl FnMut(SeriesKey, &[Bucket]),
    ) -> Result<(), StoreError> {
        let selected = self.select(selector)?;
        let (read, heads) = self.snapshot(&selected, start.saturating_sub(res.ms()) + 1, end)?;
        let table = read.open_table(rollup_table(res))?;
        let chunks = read.open_table(CHUNKS)?;
        // A bucket ending at `start` holds points after `start - res`, possibly in the
        // previous window's rows.
        let windows = match (table.first()?, table.last()?) {
            (Some(first), Some(last)) => Some(
                window(start.saturating_sub(res.ms())).max(first.0.value().0)
                    ..=window(end).min(last.0.value().0),
            ),
            _ => None,
        };
        let corrupt = |e: crate::codec::CodecError| StoreError::Corrupt {
            what: "rollup",
            message: e.to_string(),
        };
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut row: Vec<Bucket> = Vec::new();
        let mut scratch = Vec::new();
        let mut raw = Vec::new();
        for (id, key) in selected {
            buckets.clear();
            for w in windows.clone().into_iter().flatten() {
                for entry in table.range((w, id, i64::MIN)..=(w, id, i64::MAX))? {
                    let (key, value) = entry?;
                    row.clear();
                    if value.value().is_empty() {
                        // A sparse chunk: bucket its raw points.
                        let chunk =
                            chunks
                                .get(key.value())?
                                .ok_or_else(|| StoreError::Corrupt {
                                    what: "rollup",
                                    message: "row without its chunk".into(),
                                })?;
                        raw.clear();
                        decode_into(
                            &mut raw,
                            chunk.value(),
                            start.saturating_sub(res.ms()) + 1,
                            end,
                        )?;
                        rollup::buckets_into(&raw, res.ms(), &mut row);
                    } else {
                        rollup::decode_append(
                            value.value(),
                            want,
                            start,
                            end,
                            &mut scratch,
                            &mut row,
                        )
                        .map_err(corrupt)?;
                    }
                    // Rows of one series come in time order: usually a plain append.
                    match (buckets.last(), row.first()) {
                        (Some(l), Some(r)) if l.end >= r.end => {
                            rollup::merge_into(&mut buckets, &row)
                        }
                        _ => buckets.extend_from_slice(&row),
                    }
                }
            }
            if let Some(head) = heads.get(&id) {
                rollup::merge_into(&mut buckets, &rollup::buckets(head, res.ms()));
            }
            f(key, &buckets);
        }
        Ok(())
    }

    /// Every selected series at `t = start, start+step, .. <= end`, each value `agg` over
    /// the points in `(t - step, t]`. Served from the coarsest rollup that divides `start`
    /// and `step` (1 h, then 1 min); from raw points otherwise.
    pub fn query_rollup(
        &self,
        selector: &str,
        start: i64,
        end: i64,
        step: i64,
        agg: RollupAgg,
    ) -> Result<Vec<SeriesData>, StoreError> {
        check_steps(start, end, step)?;
        let mut out = Vec::new();
        let mut keep = |key: SeriesKey, points: Vec<(i64, f64)>| {
            if !points.is_empty() {
                out.push(SeriesData { key, points });
            }
        };
        match Resolution::ALL
            .into_iter()
            .find(|r| start % r.ms() == 0 && step % r.ms() == 0)
        {
            Some(res) => self.scan_rollup(
                selector,
                res,
                start.saturating_sub(step) + 1,
                end,
                agg.columns(),
                |key, buckets| keep(key, rollup::fold_steps(buckets, start, end, step, agg)),
            )?,
            // Unaligned: 1 ms buckets, one per point.
            None => self.scan(selector, start.saturating_sub(step) + 1, end, |key, pts| {
                keep(
                    key,
                    rollup::fold_steps(&rollup::buckets(pts, 1), start, end, step, agg),
                )
            })?,
        }
        Ok(out)
    }

    /// `query_range` from the `last` column of `res` rollups; exact when `start`, `step`
    /// and `lookback` are multiples of the resolution (the caller checks).
    pub(crate) fn query_range_rollup(
        &self,
        selector: &str,
        start: i64,
        end: i64,
        step: i64,
        lookback: i64,
        res: Resolution,
    ) -> Result<Vec<SeriesData>, StoreError> {
        let mut out = Vec::new();
        self.scan_rollup(
            selector,
            res,
            start.saturating_sub(lookback) + 1,
            end,
            &[Column::Last],
            |key, buckets| {
                let points = rollup::align_last(buckets, start, end, step, lookback);
                if !points.is_empty() {
                    out.push(SeriesData { key, points });
                }
            },
        )?;
        Ok(out)
    }
}
