//! A decoder specialised for [`TelemetryEvent`]: per writer schema it compiles a plan (one step
//! per writer field) that reads the Avro binary straight into the event, with Avro schema
//! resolution done once when the plan is built instead of once per message:
//!
//! - writer fields are matched to reader fields by name, in the writer's order;
//! - a writer field the reader lacks is skipped (walked over its writer schema, within limits);
//! - a reader field the writer lacks takes the reader's default (`null`, `[]`);
//! - numbers are promoted as Avro allows (`int` → `long`; `int`, `long`, `float` → `double`);
//! - the writer's `VehicleStatus` symbols are mapped to the reader's by name;
//! - an optional text may be written as `["null","string"]` in either order, or as a plain
//!   `string` or `null`.
//!
//! Anything else (a `bytes` written for a `string`, a named type referenced rather than
//! defined, aliases, a default this decoder does not know) builds no plan: the caller decodes
//! such a writer through apache-avro as before. Every byte is read with the primitives of
//! [`crate::bounded`]'s walk and counted the same way, so the plan accepts and refuses exactly
//! the datums the bounded check plus apache-avro do. Pure: no registry, no I/O.

use apache_avro::schema::RecordSchema;
use apache_avro::Schema;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};

use crate::bounded::{Limits, Names, Walk};

#[derive(Debug, Clone, Copy)]
#[allow(clippy::enum_variant_names)] // named after the fields
enum Text {
    EventId,
    FleetId,
    VehicleId,
}

#[derive(Debug, Clone, Copy)]
enum Whole {
    TsMs,
    Seq,
}

#[derive(Debug, Clone, Copy)]
enum Real {
    Lat,
    Lon,
    SpeedKph,
    OdometerKm,
    EnergyPct,
    EnergyUsedKwh,
    PayloadKg,
}

#[derive(Debug, Clone, Copy)]
enum OptText {
    MissionId,
    ZoneId,
}

/// A reader field of `TelemetryEvent`, by its name in the reader schema.
#[derive(Debug, Clone, Copy)]
enum Field {
    Text(Text),
    Whole(Whole),
    Real(Real),
    Status,
    OptText(OptText),
    FaultCodes,
}

impl Field {
    fn of(name: &str) -> Option<Field> {
        Some(match name {
            "event_id" => Field::Text(Text::EventId),
            "fleet_id" => Field::Text(Text::FleetId),
            "vehicle_id" => Field::Text(Text::VehicleId),
            "ts_ms" => Field::Whole(Whole::TsMs),
            "seq" => Field::Whole(Whole::Seq),
            "lat" => Field::Real(Real::Lat),
            "lon" => Field::Real(Real::Lon),
            "speed_kph" => Field::Real(Real::SpeedKph),
            "odometer_km" => Field::Real(Real::OdometerKm),
            "energy_pct" => Field::Real(Real::EnergyPct),
            "energy_used_kwh" => Field::Real(Real::EnergyUsedKwh),
            "payload_kg" => Field::Real(Real::PayloadKg),
            "status" => Field::Status,
            "mission_id" => Field::OptText(OptText::MissionId),
            "zone_id" => Field::OptText(OptText::ZoneId),
            "fault_codes" => Field::FaultCodes,
            _ => return None,
        })
    }
}

/// How a writer encodes a number.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int,
    Long,
    Float,
    Double,
}

/// How a writer encodes an optional text.
#[derive(Debug, Clone)]
enum Optional {
    /// A plain `string`: always present.
    Always,
    /// A plain `null`: never present.
    Never,
    /// A union of `null` and `string`: for each branch, whether it is the string.
    Union(Vec<bool>),
}

/// What to do with one writer field.
#[derive(Debug, Clone)]
enum Step<'s> {
    Text(Text),
    Whole(Whole, Num),
    Real(Real, Num),
    /// The reader's status for each writer symbol (`None`: the reader has no such symbol).
    Status(Vec<Option<VehicleStatus>>),
    OptText(OptText, Optional),
    FaultCodes,
    /// A field the reader does not have: walked over its writer schema and dropped.
    Skip(&'s Schema),
}

/// A compiled decoder of `TelemetryEvent` datums written with one writer schema.
#[derive(Debug, Clone)]
pub(crate) struct TelemetryPlan<'s> {
    steps: Vec<Step<'s>>,
    /// The writer record's namespace (for named types inside skipped fields).
    namespace: Option<String>,
    /// Values the bounded walk counts for the record and its decoded fields, whatever the
    /// datum: one per record and field, one more per union branch.
    fixed_values: u64,
    /// Optional reader texts the writer lacks: `None` in every event (their default).
    absent: Vec<OptText>,
}

/// The nesting the decoded fields reach: a union branch or an array item is at depth 2.
const DEPTH: u32 = 2;

impl<'s> TelemetryPlan<'s> {
    /// The plan for `writer` read as `reader` (the bundled telemetry schema), or `None` when
    /// this decoder cannot resolve it (the caller then decodes it generically). `writer` must
    /// already be known to resolve against `reader` (`SchemaCompatibility::can_read`).
    pub(crate) fn new(writer: &'s Schema, reader: &Schema) -> Option<TelemetryPlan<'s>> {
        let (Schema::Record(w), Schema::Record(r)) = (writer, reader) else {
            return None;
        };
        if r.fields.iter().any(|f| !f.aliases.is_empty()) {
            return None;
        }
        let mut steps = Vec::with_capacity(w.fields.len());
        let mut fixed_values = 1;
        for wf in &w.fields {
            let Some(rf) = r.fields.iter().find(|rf| rf.name == wf.name) else {
                steps.push(Step::Skip(&wf.schema));
                continue;
            };
            let step = Self::step(Field::of(&rf.name)?, &wf.schema, &rf.schema)?;
            fixed_values += match step {
                Step::OptText(_, Optional::Union(_)) => 2,
                _ => 1,
            };
            steps.push(step);
        }
        // A reader field the writer lacks takes its default; only the defaults of the blank
        // event (`TelemetryEvent::default`) are known here.
        let mut absent = Vec::new();
        for rf in &r.fields {
            if w.fields.iter().any(|wf| wf.name == rf.name) {
                continue;
            }
            let default = rf.default.as_ref()?;
            let blank = match Field::of(&rf.name)? {
                Field::OptText(x) => {
                    absent.push(x);
                    default.is_null()
                }
                Field::FaultCodes => default.as_array().is_some_and(|a| a.is_empty()),
                _ => false,
            };
            if !blank {
                return None;
            }
        }
        Some(TelemetryPlan {
            steps,
            namespace: namespace(w),
            fixed_values,
            absent,
        })
    }

    fn step(field: Field, writer: &Schema, reader: &Schema) -> Option<Step<'s>> {
        let num = match writer {
            Schema::Int => Some(Num::Int),
            Schema::Long => Some(Num::Long),
            Schema::Float => Some(Num::Float),
            Schema::Double => Some(Num::Double),
            _ => None,
        };
        Some(match field {
            Field::Text(t) => match writer {
                Schema::String => Step::Text(t),
                _ => return None,
            },
            Field::Whole(x) => match num? {
                n @ (Num::Int | Num::Long) => Step::Whole(x, n),
                _ => return None,
            },
            Field::Real(x) => Step::Real(x, num?),
            Field::Status => {
                let (Schema::Enum(w), Schema::Enum(r)) = (writer, reader) else {
                    return None;
                };
                let reader_status = |symbol: &str| {
                    r.symbols
                        .iter()
                        .any(|s| s == symbol)
                        .then(|| VehicleStatus::parse(symbol))
                        .flatten()
                };
                let fallback = r.default.as_deref().and_then(reader_status);
                Step::Status(
                    w.symbols
                        .iter()
                        .map(|s| reader_status(s).or(fallback))
                        .collect(),
                )
            }
            Field::OptText(x) => Step::OptText(
                x,
                match writer {
                    Schema::String => Optional::Always,
                    Schema::Null => Optional::Never,
                    Schema::Union(u) => Optional::Union(
                        u.variants()
                            .iter()
                            .map(|v| match v {
                                Schema::String => Some(true),
                                Schema::Null => Some(false),
                                _ => None,
                            })
                            .collect::<Option<Vec<bool>>>()?,
                    ),
                    _ => return None,
                },
            ),
            Field::FaultCodes => match writer {
                Schema::Array(a) if *a.items == Schema::String => Step::FaultCodes,
                _ => return None,
            },
        })
    }

    /// Whether `limits` let this plan decide alone (a depth limit below the decoded fields'
    /// nesting is left to the generic path, which reports it).
    pub(crate) fn fits(&self, limits: Limits) -> bool {
        limits.max_depth >= DEPTH
    }

    /// Decodes one datum (the bytes after the Confluent header) within `limits` into `ev`,
    /// whatever it held: exactly one datum, no trailing bytes, at most `limits.max_values`
    /// values. `names` are the writer schema's named types. Expects
    /// [`TelemetryPlan::fits`]`(limits)`. Every field of `ev` is overwritten and its text
    /// buffers are reused (no allocation once they are large enough); after an error `ev`
    /// holds part of the datum.
    pub(crate) fn decode_into(
        &self,
        names: &Names<'_>,
        body: &[u8],
        limits: Limits,
        ev: &mut TelemetryEvent,
    ) -> Result<(), String> {
        let mut w = Walk::new(body, names, limits);
        w.count(self.fixed_values)?;
        // Every field the writer has is written below (the plan refuses a writer that lacks
        // a required one); the rest take their defaults here.
        ev.fault_codes.clear();
        for x in &self.absent {
            *opt_text(ev, *x) = None;
        }
        for step in &self.steps {
            match step {
                Step::Text(t) => overwrite(text(ev, *t), w.string()?),
                Step::Whole(x, n) => {
                    let v = match n {
                        Num::Int => i64::from(w.int()?),
                        _ => w.long()?,
                    };
                    match x {
                        Whole::TsMs => ev.ts_ms = v,
                        Whole::Seq => ev.seq = v,
                    }
                }
                Step::Real(x, n) => *real(ev, *x) = number(&mut w, *n)?,
                Step::Status(map) => {
                    let i = w.int()?;
                    let symbol = usize::try_from(i).ok().and_then(|i| map.get(i));
                    ev.status = match symbol {
                        Some(Some(s)) => *s,
                        Some(None) => return Err(format!("status symbol {i} not in the reader")),
                        None => return Err(format!("enum VehicleStatus index {i} out of range")),
                    };
                }
                Step::OptText(x, layout) => {
                    let present = match layout {
                        Optional::Always => true,
                        Optional::Never => false,
                        Optional::Union(branches) => {
                            let i = w.long()?;
                            *usize::try_from(i)
                                .ok()
                                .and_then(|i| branches.get(i))
                                .ok_or_else(|| format!("union index {i} out of range"))?
                        }
                    };
                    let slot = opt_text(ev, *x);
                    if present {
                        let value = w.string()?;
                        match slot {
                            Some(s) => overwrite(s, value),
                            None => *slot = Some(value.to_owned()),
                        }
                    } else {
                        *slot = None;
                    }
                }
                Step::FaultCodes => {
                    let codes = &mut ev.fault_codes;
                    // Strings take at least one byte (their length); each item is counted by
                    // its block and once more as a value, as the bounded walk does.
                    w.blocks(1, |w| {
                        w.count(1)?;
                        codes.push(w.string()?.to_owned());
                        Ok(())
                    })?;
                }
                Step::Skip(schema) => w.datum(schema, self.namespace.as_deref(), 1)?,
            }
        }
        w.finish()?;
        Ok(())
    }
}

fn namespace(r: &RecordSchema) -> Option<String> {
    r.name
        .fully_qualified_name(None)
        .namespace()
        .map(str::to_string)
}

fn number(w: &mut Walk<'_, '_, '_>, n: Num) -> Result<f64, String> {
    Ok(match n {
        Num::Int => f64::from(w.int()?),
        Num::Long => w.long()? as f64,
        Num::Float => f64::from(f32::from_le_bytes(w.take(4)?.try_into().expect("4 bytes"))),
        Num::Double => f64::from_le_bytes(w.take(8)?.try_into().expect("8 bytes")),
    })
}

/// `s` := `value`, in its own buffer.
fn overwrite(s: &mut String, value: &str) {
    s.clear();
    s.push_str(value);
}

fn opt_text(ev: &mut TelemetryEvent, x: OptText) -> &mut Option<String> {
    match x {
        OptText::MissionId => &mut ev.mission_id,
        OptText::ZoneId => &mut ev.zone_id,
    }
}

fn text(ev: &mut TelemetryEvent, t: Text) -> &mut String {
    match t {
        Text::EventId => &mut ev.event_id,
        Text::FleetId => &mut ev.fleet_id,
        Text::VehicleId => &mut ev.vehicle_id,
    }
}

fn real(ev: &mut TelemetryEvent, x: Real) -> &mut f64 {
    match x {
        Real::Lat => &mut ev.lat,
        Real::Lon => &mut ev.lon,
        Real::SpeedKph => &mut ev.speed_kph,
        Real::OdometerKm => &mut ev.odometer_km,
        Real::EnergyPct => &mut ev.energy_pct,
        Real::EnergyUsedKwh => &mut ev.energy_used_kwh,
        Real::PayloadKg => &mut ev.payload_kg,
    }
}

/// The path of the first text of `ev` that contains a NUL character, in the reader schema's
/// field order (as [`crate::codec::nul_text`] reports it for the generic value).
pub(crate) fn nul_field(ev: &TelemetryEvent) -> Option<String> {
    let nul = |s: &str| s.contains('\0');
    [
        ("event_id", &ev.event_id),
        ("fleet_id", &ev.fleet_id),
        ("vehicle_id", &ev.vehicle_id),
    ]
    .into_iter()
    .find(|(_, s)| nul(s))
    .map(|(name, _)| name.to_string())
    .or_else(|| {
        [("mission_id", &ev.mission_id), ("zone_id", &ev.zone_id)]
            .into_iter()
            .find(|(_, s)| s.as_deref().is_some_and(nul))
            .map(|(name, _)| name.to_string())
    })
    .or_else(|| {
        ev.fault_codes
            .iter()
            .position(|s| nul(s))
            .map(|i| format!("fault_codes[{i}]"))
    })
}
