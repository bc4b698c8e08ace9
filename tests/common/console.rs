//! Driving the console page (agent/assets/console/) in a [`Tab`] as an installer or a supervisor
//! would: signing in, waiting for a view, tapping points on a camera's picture in the region editor,
//! the language switch, screenshots into docs/screenshots/. Shared by tests/console_page.rs's
//! stand-in box and its run against the real agent.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

use super::cdp::Tab;

/// How long the page may take to reach a state.
pub const WAIT: Duration = Duration::from_secs(20);

/// A screenshot of the viewport to docs/screenshots/`name`.png (after the frames and fonts settle).
pub fn screenshot(tab: &Tab, name: &str) {
    tab.eval("window.scrollTo(0, 0)");
    std::thread::sleep(Duration::from_millis(400));
    tab.screenshot(&super::repo(&format!("docs/screenshots/{name}.png")));
}

/// A screenshot like [`screenshot`] with `selector`'s element scrolled to the top of the viewport.
pub fn screenshot_of(tab: &Tab, selector: &str, name: &str) {
    tab.eval(&format!("document.querySelector({selector:?}).scrollIntoView({{block: 'start'}})"));
    std::thread::sleep(Duration::from_millis(400));
    tab.screenshot(&super::repo(&format!("docs/screenshots/{name}.png")));
}

/// Waits for the page's view (`signin`, `cameras`, `editor`, `events`, `evidence`, `people`, `audit`).
pub fn view_is(tab: &Tab, view: &str) {
    tab.wait_for(&format!("document.body.dataset.view === '{view}'"), &format!("the {view} view"), WAIT);
}

/// Waits until `selector`'s text contains `expected`.
pub fn wait_text(tab: &Tab, selector: &str, expected: &str) {
    tab.wait_for(
        &format!("(document.querySelector({selector:?})?.innerText ?? '').includes({expected:?})"),
        &format!("{selector} to say {expected:?}"),
        WAIT,
    );
}

/// Waits for an element matching `selector`.
pub fn wait_for_element(tab: &Tab, selector: &str) {
    tab.wait_for(&format!("!!document.querySelector({selector:?})"), &format!("an element {selector}"), WAIT);
}

/// Types into an input and fires `input` and `change` as a person's typing would.
pub fn fill(tab: &Tab, selector: &str, value: &str) {
    let done = tab.eval(&format!(
        "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.focus(); e.value = {value:?};
           e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()"
    ));
    assert_eq!(done, json!(true), "no field {selector}");
}

/// Signs in with the form (the page must show it).
pub fn sign_in(tab: &Tab, name: &str, password: &str) {
    view_is(tab, "signin");
    fill(tab, "#signin-name", name);
    fill(tab, "#signin-password", password);
    tab.click("#signin-submit");
}

/// Switches the page to `lang` (`en` or `zh-CN`) with its button, if it is not already.
pub fn set_language(tab: &Tab, lang: &str) {
    if tab.eval("document.documentElement.lang") != json!(lang) {
        tab.click("#lang");
    }
    assert_eq!(tab.eval("document.documentElement.lang"), json!(lang));
}

/// The viewport point of the normalised frame position (`x`, `y`) in the region editor.
pub fn frame_point(tab: &Tab, x: f64, y: f64) -> (f64, f64) {
    let at = tab.eval(&format!(
        "(() => {{ const r = document.getElementById('editor-svg').getBoundingClientRect();
           return [r.left + r.width * {x}, r.top + r.height * {y}]; }})()"
    ));
    (at[0].as_f64().unwrap(), at[1].as_f64().unwrap())
}

/// Scrolls the editor's picture into view (viewport positions of [`frame_point`] stay valid after).
pub fn show_frame(tab: &Tab) {
    tab.eval("document.getElementById('editor-svg').scrollIntoView({block: 'center'})");
    std::thread::sleep(Duration::from_millis(150));
}

/// Draws a new region with the mouse: presses the add button (`#add-bed`, …), clicks `points` (normalised)
/// and clicks the first point again to close it.
pub fn draw_region(tab: &Tab, add_button: &str, points: &[(f64, f64)]) {
    tab.click(add_button);
    show_frame(tab);
    for &(x, y) in points.iter().chain(points.first()) {
        let p = frame_point(tab, x, y);
        tab.mouse_drag(p, p, 0);
    }
}

/// The regions the editor holds now: name → points.
pub fn editor_regions(tab: &Tab) -> Value {
    tab.eval(
        "Object.fromEntries([...document.querySelectorAll('#editor-svg g.shape[data-region]')].map(g =>
           [g.dataset.region, g.querySelector('polygon').getAttribute('points')]))",
    )
}
