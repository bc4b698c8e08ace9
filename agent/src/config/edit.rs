//! One camera's entry changed in the configuration's text, the rest of the file as it was: comments,
//! order, spacing and every other section (`toml_edit`). The console's camera editor saves through
//! this; what the result means is checked afterwards, on the whole new text, by the code `vigil
//! check-config` runs ([`super::for_run_from_text`]).

use std::collections::BTreeMap;

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// What the console may change of one `[[cameras]]` entry. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraEdit {
    pub name: Option<String>,
    pub url: Option<String>,
    /// The camera's regions after the edit (all of them: a name left out is removed).
    pub regions: BTreeMap<String, Vec<Vec<f64>>>,
    /// `Some(None)` removes the face window; `None` leaves it.
    pub face_window: Option<Option<Vec<Vec<f64>>>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    /// The text in force is not TOML any more (edited by hand since the agent read it).
    #[error("the configuration file cannot be edited: {0}")]
    Unparsable(String),
    #[error("no camera {0:?} in the configuration")]
    NoCamera(String),
}

/// `text` with camera `id`'s entry changed as `edit` says.
pub fn edit_camera(text: &str, id: &str, edit: &CameraEdit) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::Unparsable(e.to_string()))?;
    let cameras: &mut ArrayOfTables = doc
        .get_mut("cameras")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| EditError::NoCamera(id.to_owned()))?;
    let camera = cameras
        .iter_mut()
        .find(|c| c.get("id").and_then(Item::as_str) == Some(id))
        .ok_or_else(|| EditError::NoCamera(id.to_owned()))?;
    if let Some(name) = &edit.name {
        set_value(camera, "name", Value::from(name.as_str()));
    }
    if let Some(url) = &edit.url {
        set_value(camera, "url", Value::from(url.as_str()));
    }
    edit_regions(camera, &edit.regions);
    match &edit.face_window {
        Some(Some(points)) => set_value(camera, "face_window", polygon(points)),
        Some(None) => {
            camera.remove("face_window");
        }
        None => {}
    }
    Ok(doc.to_string())
}

/// Replaces a value and keeps the comment and spacing around it.
fn set_value(table: &mut Table, key: &str, mut value: Value) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// `[[x, y], ...]` on one line.
fn polygon(points: &[Vec<f64>]) -> Value {
    let mut array = Array::new();
    for point in points {
        array.push(Value::Array(point.iter().copied().collect()));
    }
    Value::Array(array)
}

/// The regions as a `[cameras.regions]` table or an inline table, whichever the file uses: regions
/// unchanged keep their text (and comments), changed ones get the new points, removed ones go.
fn edit_regions(camera: &mut Table, regions: &BTreeMap<String, Vec<Vec<f64>>>) {
    let same = |item: &Value, points: &Vec<Vec<f64>>| points_of(item).as_ref() == Some(points);
    match camera.get_mut("regions") {
        Some(Item::Table(table)) => {
            let old: Vec<String> = table.iter().map(|(k, _)| k.to_owned()).collect();
            for name in old.iter().filter(|n| !regions.contains_key(*n)) {
                table.remove(name);
            }
            for (name, points) in regions {
                if table.get(name).and_then(Item::as_value).is_some_and(|v| same(v, points)) {
                    continue;
                }
                set_value(table, name, polygon(points));
            }
        }
        Some(Item::Value(Value::InlineTable(inline))) => {
            let old: Vec<String> = inline.iter().map(|(k, _)| k.to_owned()).collect();
            for name in old.iter().filter(|n| !regions.contains_key(*n)) {
                inline.remove(name);
            }
            for (name, points) in regions {
                if inline.get(name).is_some_and(|v| same(v, points)) {
                    continue;
                }
                inline.insert(name, polygon(points));
            }
        }
        _ if regions.is_empty() => {
            camera.remove("regions");
        }
        _ => {
            // None yet (or something that is not a table, which the check afterwards would refuse):
            // an inline table keeps the new entry in one place, under the camera it belongs to.
            let mut inline = InlineTable::new();
            for (name, points) in regions {
                inline.insert(name, polygon(points));
            }
            camera.insert("regions", Item::Value(Value::InlineTable(inline)));
        }
    }
}

/// A polygon as the file writes it, when it is one.
fn points_of(value: &Value) -> Option<Vec<Vec<f64>>> {
    value
        .as_array()?
        .iter()
        .map(|p| {
            p.as_array()?
                .iter()
                .map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                .collect::<Option<Vec<f64>>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# The box at ward 3.
[site]
id = "h"
device_id = "d"

[[cameras]]
id = "ward-3"   # by the door
role = "ward"
url = "rtsp://cam/1"

[cameras.regions]
# Bed 1 is by the window.
bed-1 = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.6], [0.1, 0.6]]
bed-2 = [[0.5, 0.1], [0.9, 0.1], [0.9, 0.6], [0.5, 0.6]]

[[cameras]]
id = "window-1"
role = "settlement_window"
url = "rtsp://cam/2"  # the counter

[mqtt]
host = "b" # broker
"#;

    fn regions(pairs: &[(&str, &[[f64; 2]])]) -> BTreeMap<String, Vec<Vec<f64>>> {
        pairs.iter().map(|(n, pts)| (n.to_string(), pts.iter().map(|p| p.to_vec()).collect())).collect()
    }

    /// Changed, added and removed regions; the comments, the other camera and the other sections are kept.
    #[test]
    fn regions_change_and_the_rest_of_the_file_stays() {
        let edit = CameraEdit {
            name: Some("Ward 3, room 12".into()),
            regions: regions(&[
                ("bed-1", &[[0.1, 0.1], [0.4, 0.1], [0.4, 0.6], [0.1, 0.6]]),
                ("bed-3", &[[0.2, 0.7], [0.6, 0.7], [0.6, 0.95]]),
            ]),
            ..CameraEdit::default()
        };
        let out = edit_camera(TEXT, "ward-3", &edit).unwrap();
        for kept in ["# The box at ward 3.", "# by the door", "# Bed 1 is by the window.", "# the counter", "# broker"]
        {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
        assert!(
            out.contains("bed-1 = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.6], [0.1, 0.6]]"),
            "unchanged text kept:\n{out}"
        );
        assert!(!out.contains("bed-2"), "{out}");
        let parsed: crate::config::Config = toml::from_str(&out).unwrap();
        let ward = &parsed.cameras[0];
        assert_eq!(ward.name.as_deref(), Some("Ward 3, room 12"));
        assert_eq!(ward.regions, edit.regions);
        assert_eq!(parsed.cameras[1].url, "rtsp://cam/2");
        assert_eq!(parsed.cameras[1].regions.len(), 0);
    }

    /// A face window and a URL on the other camera; regions in an inline table; unknown cameras refused.
    #[test]
    fn face_window_url_inline_regions_and_unknown_cameras() {
        let edit = CameraEdit {
            url: Some("rtsp://cam/3".into()),
            face_window: Some(Some(vec![vec![0.2, 0.1], vec![0.8, 0.1], vec![0.5, 0.9]])),
            ..CameraEdit::default()
        };
        let out = edit_camera(TEXT, "window-1", &edit).unwrap();
        assert!(out.contains("url = \"rtsp://cam/3\"  # the counter"), "{out}");
        let parsed: crate::config::Config = toml::from_str(&out).unwrap();
        assert_eq!(parsed.cameras[1].face_window.as_ref().map(Vec::len), Some(3));
        let removed = CameraEdit { face_window: Some(None), ..CameraEdit::default() };
        let back = edit_camera(&out, "window-1", &removed).unwrap();
        assert!(!back.contains("face_window"), "{back}");

        let inline = "[site]\nid = \"h\"\ndevice_id = \"d\"\n[[cameras]]\nid = \"d-1\"\nrole = \"dialysis_room\"\nurl = \"test://ball\"\n\
                      regions = { chair-1 = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3]] }\n";
        let edit = CameraEdit {
            regions: regions(&[("chair-2", &[[0.5, 0.5], [0.7, 0.5], [0.7, 0.7]])]),
            ..Default::default()
        };
        let out = edit_camera(inline, "d-1", &edit).unwrap();
        let parsed: crate::config::Config = toml::from_str(&out).unwrap();
        assert_eq!(parsed.cameras[0].regions, edit.regions);
        assert_eq!(edit_camera(TEXT, "ward-9", &edit), Err(EditError::NoCamera("ward-9".into())));
    }
}
