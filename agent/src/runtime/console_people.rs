//! What the console's people pages read and change (`http::console_people`): the roster in force
//! ([`People`]), the gallery, and enrolment on the agent's own enrolment thread ([`Enrolment`], the one
//! the `enroll` command uses: the same sessions, quality gate and reasons as `vigil enroll`).

use std::path::PathBuf;
use std::sync::Arc;

use super::handlers::{EnrolError, Enrolment};
use super::people::People;
use crate::config::Config;
use crate::gallery::PersonKind;
use crate::gallery::enrol::EnrollReport;
use crate::http::console_people::{
    EnrolledPerson, PeopleError, PeopleService, PeopleView, RosterSource, UploadedPhoto,
};

pub struct ConsolePeople {
    enrolment: Enrolment,
    people: Arc<People>,
    /// `<data_dir>/roster.json`: present once a roster was put in force (by the platform or the file).
    stored_roster: PathBuf,
    /// `[roster] file` is set: the site keeps its roster in a file.
    from_file: bool,
}

impl ConsolePeople {
    pub fn new(config: &Config, enrolment: Enrolment, people: Arc<People>) -> ConsolePeople {
        ConsolePeople {
            enrolment,
            people,
            stored_roster: config.storage.data_dir.join("roster.json"),
            from_file: config.roster.file.is_some(),
        }
    }
}

impl From<EnrolError> for PeopleError {
    fn from(e: EnrolError) -> PeopleError {
        match e {
            EnrolError::Stopped => PeopleError::Unavailable(e.to_string()),
            EnrolError::Save(detail) => PeopleError::Storage(detail),
        }
    }
}

impl PeopleService for ConsolePeople {
    fn view(&self) -> PeopleView {
        let roster = self.people.roster().clone();
        let enrolled = {
            let gallery = self.enrolment.gallery.lock().unwrap_or_else(|e| e.into_inner());
            gallery
                .entries()
                .iter()
                .map(|e| EnrolledPerson {
                    id: e.id.clone(),
                    role: e.role,
                    enrolled_at: e.enrolled_at.clone(),
                    faces: e.embeddings.len(),
                })
                .collect()
        };
        // A site with `[roster] file` takes its roster from it (a platform's command may still replace
        // it until the file next changes); the roster is stored once one was put in force.
        let source = if !self.stored_roster.exists() {
            RosterSource::None
        } else if self.from_file {
            RosterSource::File
        } else {
            RosterSource::Platform
        };
        PeopleView { roster, enrolled, source }
    }

    fn enrol(&self, id: &str, role: PersonKind, photos: Vec<UploadedPhoto>) -> Result<EnrollReport, PeopleError> {
        let photos = photos.into_iter().map(|p| (p.name, p.bytes)).collect();
        Ok(self.enrolment.enrol(id, role, photos, Vec::new())?)
    }

    fn remove(&self, id: &str) -> Result<bool, PeopleError> {
        Ok(self.enrolment.remove(id)?)
    }
}
