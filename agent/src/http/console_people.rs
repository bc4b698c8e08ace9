//! The console's people (docs/console.md, "People"): the roster as the agent holds it, with who of it is
//! enrolled; enrolment from uploaded photos; removal from the gallery.
//!
//! - `GET /console/api/people` (any signed-in role): inpatients and their beds, dialysis sessions,
//!   physicians' shifts, each with `enrolled`; the gallery's people (never an embedding); where the
//!   roster came from.
//! - `POST /console/api/people/{id}/enrol` (installers), `multipart/form-data` with a `role` field and
//!   1..[`MAX_PHOTOS`] `photos` files of at most [`MAX_PHOTO_BYTES`] each: the photos go to the agent's
//!   enrolment thread, which checks each as `vigil enroll` does (one face, large, sharp, frontal enough;
//!   the same reasons); the answer is each photo's verdict.
//! - `DELETE /console/api/people/{id}` (installers): out of the gallery, as the `unenroll` command.
//!
//! Face images are held in memory only, for the one request: never written, never logged (not even
//! their file names, which may name a patient). What the agent does with them is the runtime's, through
//! [`PeopleService`] (http may not import the runtime). Each enrolment and removal is an audit row.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Extension, Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::console::{ConsoleApi, Installer, Require, SignedIn, blocking, no_store, store_failed};
use super::error::ApiError;
use super::limits::UploadGate;
use crate::console::Audit;
use crate::decide::roster::Roster;
use crate::gallery::PersonKind;
use crate::gallery::enrol::{EnrollReport, valid_id};
use crate::publish::results::{FaceQuality, role as role_name};

/// Photos in one enrolment: more would not make it better, and each is held in memory.
pub const MAX_PHOTOS: usize = 10;

/// One photo's size: a phone camera's JPEG is 2–6 MB.
pub const MAX_PHOTO_BYTES: u64 = 10 << 20;

/// The whole form as the multipart reader takes it (the photos, the role field, the parts' headers). A
/// request declaring a length is first held to `[http] max_body_bytes` by the server's size layer.
const MAX_FORM_BYTES: usize = MAX_PHOTOS * (MAX_PHOTO_BYTES as usize) + (64 << 10);

/// Enrolments read and examined at once, and how many more may wait (holding only their headers):
/// each holds its photos in memory, and the enrolment thread takes one at a time anyway.
const ENROLMENTS_AT_ONCE: usize = 1;
const ENROLMENTS_WAITING: usize = 2;

/// The `role` field: `patient` or `physician`.
const MAX_ROLE_BYTES: u64 = 32;

/// What the console asks of the agent about people; the runtime implements it (`runtime::console_people`)
/// over the enrolment thread, the gallery and the roster in force. Calls block (the enrolment thread,
/// the gallery's file): the handlers make them on blocking threads.
pub trait PeopleService: Send + Sync {
    /// The roster in force, the gallery's people and where the roster came from.
    fn view(&self) -> PeopleView;

    /// Enrols `id` from `photos` on the agent's enrolment thread, with the checks of `vigil enroll`;
    /// replaces an earlier enrolment of `id` when a photo is accepted, changes nothing otherwise.
    fn enrol(&self, id: &str, role: PersonKind, photos: Vec<UploadedPhoto>) -> Result<EnrollReport, PeopleError>;

    /// Removes `id` from the gallery; false when it was not enrolled.
    fn remove(&self, id: &str) -> Result<bool, PeopleError>;
}

/// One uploaded photo, in memory: its name as the report shows it, its bytes.
pub struct UploadedPhoto {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What `GET /console/api/people` shows.
pub struct PeopleView {
    pub roster: Roster,
    pub enrolled: Vec<EnrolledPerson>,
    pub source: RosterSource,
}

/// One person of the gallery, without the embeddings.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolledPerson {
    pub id: String,
    pub role: PersonKind,
    pub enrolled_at: String,
    /// Embeddings held for this person: one per accepted photo.
    pub faces: usize,
}

/// Where the roster in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RosterSource {
    /// The platform's signed `roster` command.
    Platform,
    /// `[roster] file`.
    File,
    /// No roster has been put in force on this box yet.
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    /// The enrolment thread is gone (the agent is stopping or restarting).
    #[error("the box cannot enrol now: {0}")]
    Unavailable(String),
    /// The gallery could not be written; nothing changed.
    #[error("the gallery could not be saved: {0}")]
    Storage(String),
}

impl From<PeopleError> for ApiError {
    fn from(e: PeopleError) -> ApiError {
        match e {
            PeopleError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            PeopleError::Storage(_) => {
                tracing::error!(error = %e, "console: the gallery cannot be saved");
                ApiError::Storage(e.to_string())
            }
        }
    }
}

/// The people routes, merged into the console's router (which gives them its state).
pub fn routes() -> Router<ConsoleApi> {
    Router::new()
        .route("/console/api/people", get(list))
        .route(
            "/console/api/people/{id}/enrol",
            // The form is limited here (the photos one by one as they are read); axum's default of
            // 2 MB for a multipart body would refuse a single phone photo.
            post(enrol)
                .route_layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
                .route_layer(Extension(Arc::new(UploadGate::new(ENROLMENTS_AT_ONCE, ENROLMENTS_WAITING)))),
        )
        .route("/console/api/people/{id}", delete(remove))
}

/// `GET /console/api/people` → the roster with `enrolled` flags, the gallery's people, `roster_source`.
async fn list(State(api): State<ConsoleApi>, _: SignedIn) -> Result<Response, ApiError> {
    let people = api.people.clone();
    let view = blocking(move || people.view()).await?;
    Ok(no_store(Json(view_json(&view)).into_response()))
}

/// The view as JSON: each roster entry as the roster holds it, plus whether its person is enrolled.
fn view_json(view: &PeopleView) -> Value {
    let enrolled: HashSet<&str> = view.enrolled.iter().map(|p| p.id.as_str()).collect();
    let flagged = |items: Vec<Value>, who: &str| -> Vec<Value> {
        items
            .into_iter()
            .map(|mut item| {
                let known = item[who].as_str().is_some_and(|id| enrolled.contains(id));
                item["enrolled"] = json!(known);
                item
            })
            .collect()
    };
    let (inpatients, sessions, shifts) =
        (values(&view.roster.inpatients), values(&view.roster.dialysis_sessions), values(&view.roster.shifts));
    json!({
        "inpatients": flagged(inpatients, "patient"),
        "dialysis_sessions": flagged(sessions, "patient"),
        "shifts": flagged(shifts, "physician"),
        "enrolled": view.enrolled,
        "roster_source": view.source,
    })
}

fn values<T: Serialize>(items: &[T]) -> Vec<Value> {
    items.iter().map(|item| serde_json::to_value(item).expect("roster entries serialise")).collect()
}

/// The form of an enrolment, read.
struct Form {
    role: PersonKind,
    photos: Vec<UploadedPhoto>,
}

/// `POST /console/api/people/{id}/enrol` (installers; multipart `role`, `photos`) → each photo's verdict;
/// 422 `no_photo_accepted` (the verdicts in the details) when none was accepted.
async fn enrol(
    State(api): State<ConsoleApi>,
    installer: Require<Installer>,
    Extension(gate): Extension<Arc<UploadGate>>,
    id: Result<Path<String>, PathRejection>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (who, id) = (installer.0, person_id(id)?);
    // Signed in and allowed: now wait for the turn to read the photos (503 `busy` when the line is full).
    let _turn = gate.enter().await?;
    let form = form.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be multipart/form-data with a role field and photos files: {}",
            e.body_text()
        ))
    })?;
    let Form { role, photos } = read_form(form).await?;
    let count = photos.len();
    let (people, person) = (api.people.clone(), id.clone());
    let report = blocking(move || people.enrol(&person, role, photos)).await??;
    let accepted = report.images.iter().filter(|v| v.accepted).count();
    let outcome = if report.enrolled { "ok" } else { "rejected" };
    let details = json!({"id": id, "role": role_name(role), "photos": count, "accepted": accepted});
    audit(&api, &who, "person_enrol", outcome, details).await?;
    tracing::info!(user = %who.session.user, id = %id, role = role_name(role), photos = count, accepted,
        "console: enrolment {}", if report.enrolled { "done" } else { "refused, no photo accepted" });
    let body = json!({
        "id": id,
        "role": role_name(role),
        "enrolled": report.enrolled,
        "photos": report.images.iter().map(|v| json!({
            "name": v.image,
            "accepted": v.accepted,
            "reason": v.reason,
            "quality": v.quality.as_ref().map(FaceQuality::from),
        })).collect::<Vec<_>>(),
    });
    if !report.enrolled {
        // The message `vigil enroll` and the `enroll` command give: every photo with its reason.
        let reasons: Vec<String> = report
            .images
            .iter()
            .map(|v| match v.reason.as_deref() {
                // A reason about the file names it already (`x.jpg: not an image ...`).
                Some(reason) if reason.starts_with(&format!("{}: ", v.image)) => reason.to_owned(),
                reason => format!("{}: {}", v.image, reason.unwrap_or("rejected")),
            })
            .collect();
        let message = format!("not enrolled, no photo accepted: {}", reasons.join("; "));
        return Err(ApiError::NoPhotoAccepted { message, details: body });
    }
    Ok(no_store(Json(body).into_response()))
}

/// `DELETE /console/api/people/{id}` (installers) → `{"removed": id}`; 404 when not enrolled.
async fn remove(
    State(api): State<ConsoleApi>,
    installer: Require<Installer>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (who, id) = (installer.0, person_id(id)?);
    let (people, person) = (api.people.clone(), id.clone());
    let removed = blocking(move || people.remove(&person)).await??;
    let outcome = if removed { "ok" } else { "not_found" };
    audit(&api, &who, "person_remove", outcome, json!({"id": id})).await?;
    if !removed {
        return Err(ApiError::NotFound(format!("{id:?} is not enrolled")));
    }
    tracing::info!(user = %who.session.user, id = %id, "console: removed from the gallery");
    Ok(no_store(Json(json!({ "removed": id })).into_response()))
}

/// The path's person id, as the gallery takes ids.
fn person_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(format!("the person id in the path: {}", e.body_text())))?;
    if !valid_id(&id) {
        return Err(ApiError::BadRequest(format!(
            "person id {:?}: use 1..64 letters, digits, '-' and '_'",
            id.chars().take(80).collect::<String>()
        )));
    }
    Ok(id)
}

/// Reads the form: one `role`, 1..[`MAX_PHOTOS`] `photos`, nothing else. Refused at the first thing
/// wrong, without reading further: an unknown field, a photo too many, a photo over its limit.
async fn read_form(mut form: Multipart) -> Result<Form, ApiError> {
    let mut role = None;
    let mut photos: Vec<UploadedPhoto> = Vec::new();
    while let Some(mut field) = form.next_field().await.map_err(form_failed)? {
        match field.name() {
            Some("role") => {
                let text = read_field(&mut field, MAX_ROLE_BYTES).await?.ok_or_else(|| {
                    ApiError::BadRequest("role must be \"patient\" or \"physician\" (a short text field)".into())
                })?;
                role = Some(match text.as_slice() {
                    b"patient" => PersonKind::Patient,
                    b"physician" => PersonKind::Physician,
                    _ => return Err(ApiError::BadRequest("role must be \"patient\" or \"physician\"".into())),
                });
            }
            Some("photos") => {
                if photos.len() == MAX_PHOTOS {
                    return Err(ApiError::BadRequest(format!(
                        "at most {MAX_PHOTOS} photos in one enrolment; send the best ones"
                    )));
                }
                let name = photo_name(field.file_name(), photos.len());
                let bytes = read_field(&mut field, MAX_PHOTO_BYTES)
                    .await?
                    .ok_or_else(|| ApiError::PhotoTooLarge { photo: name.clone(), limit: MAX_PHOTO_BYTES })?;
                photos.push(UploadedPhoto { name, bytes });
            }
            other => {
                let name = other.unwrap_or("").chars().take(40).collect::<String>();
                return Err(ApiError::BadRequest(format!(
                    "unknown form field {name:?}: an enrolment has a role field and photos files"
                )));
            }
        }
    }
    let role = role.ok_or_else(|| ApiError::BadRequest("the role field is missing (patient or physician)".into()))?;
    if photos.is_empty() {
        return Err(ApiError::BadRequest(format!("no photo: send 1..{MAX_PHOTOS} files in the photos field")));
    }
    Ok(Form { role, photos })
}

/// A field's bytes; None as soon as it passes `limit` (the rest is not read).
async fn read_field(field: &mut Field<'_>, limit: u64) -> Result<Option<Vec<u8>>, ApiError> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(form_failed)? {
        if (data.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Some(data))
}

fn form_failed(e: MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge { limit: MAX_FORM_BYTES as u64 }
    } else {
        ApiError::BadRequest(format!("the multipart form cannot be read: {}", e.body_text()))
    }
}

/// How a photo is named in its verdict: the file's own name (no folders, printable, at most 100
/// characters), else `photos[i]`.
fn photo_name(file_name: Option<&str>, index: usize) -> String {
    let base = file_name.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(100).collect();
    if clean.trim().is_empty() { format!("photos[{index}]") } else { clean }
}

/// One audit row for a change by `who`.
async fn audit(
    api: &ConsoleApi,
    who: &SignedIn,
    action: &'static str,
    outcome: &'static str,
    details: Value,
) -> Result<(), ApiError> {
    let (store, user, role, address) =
        (api.store.clone(), who.session.user.clone(), who.session.role, who.address.clone());
    blocking(move || {
        let entry = Audit { who: &user, role: Some(role), action, address: &address, outcome, details };
        store.audit(entry, SystemTime::now())
    })
    .await?
    .map_err(store_failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::roster::{DialysisSession, Inpatient, Shift};

    #[test]
    fn roster_entries_are_flagged_enrolled_by_their_person() {
        let at = |s| crate::times::parse(s, crate::times::Naive::Refuse).unwrap();
        let roster = Roster {
            inpatients: vec![
                Inpatient { patient: "p-1".into(), camera: "ward-3".into(), bed: "bed-1".into() },
                Inpatient { patient: "p-2".into(), camera: "ward-3".into(), bed: "bed-2".into() },
            ],
            dialysis_sessions: vec![DialysisSession {
                session: "s-9".into(),
                patient: "p-2".into(),
                camera: "dial-1".into(),
                chair: "chair-4".into(),
                start: at("2026-12-06T06:00:00Z"),
                billed_minutes: 240,
            }],
            shifts: vec![Shift {
                physician: "dr-7".into(),
                start: at("2026-12-06T00:00:00Z"),
                end: at("2026-12-06T08:00:00Z"),
            }],
        };
        let enrolled = vec![
            EnrolledPerson { id: "p-2".into(), role: PersonKind::Patient, enrolled_at: "t".into(), faces: 3 },
            EnrolledPerson { id: "dr-7".into(), role: PersonKind::Physician, enrolled_at: "u".into(), faces: 1 },
        ];
        let json = view_json(&PeopleView { roster, enrolled, source: RosterSource::File });
        assert_eq!(
            json["inpatients"][0],
            json!({"patient": "p-1", "camera": "ward-3", "bed": "bed-1", "enrolled": false})
        );
        assert_eq!(json["inpatients"][1]["enrolled"], true);
        assert_eq!(json["dialysis_sessions"][0]["start"], "2026-12-06T06:00:00Z");
        assert_eq!(
            (&json["dialysis_sessions"][0]["enrolled"], &json["shifts"][0]["enrolled"]),
            (&json!(true), &json!(true))
        );
        assert_eq!(json["enrolled"][1], json!({"id": "dr-7", "role": "physician", "enrolled_at": "u", "faces": 1}));
        assert_eq!(json["roster_source"], "file");
    }

    #[test]
    fn photos_are_named_by_their_file_name_without_folders() {
        assert_eq!(photo_name(Some("obama.jpg"), 0), "obama.jpg");
        assert_eq!(photo_name(Some("C:\\Users\\li\\front.png"), 1), "front.png");
        assert_eq!(photo_name(Some("../../etc/passwd"), 2), "passwd");
        assert_eq!(photo_name(Some("a\nb\u{7}.jpg"), 3), "ab.jpg");
        assert_eq!(photo_name(Some(""), 4), "photos[4]");
        assert_eq!(photo_name(None, 5), "photos[5]");
        assert_eq!(photo_name(Some(&"x".repeat(300)), 6).len(), 100);
    }
}
