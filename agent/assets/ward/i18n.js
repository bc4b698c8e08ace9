// Every word the page shows, in English and Simplified Chinese, from this one table. The language
// follows the phone (navigator.language) until the user picks one with the switch (kept on the phone).
// Reasons are the box's stable check reasons (docs/ward-phones.md, "Checks"), said the way a ward
// assistant would say them: what went wrong and what to do about it.

export const STRINGS = {
  en: {
    title: "Ward phone",
    lang_switch: "中文",
    lang_switch_label: "切换到中文 (switch to Chinese)",
    wait_opening: "Opening the page…",
    wait_enrolling: "Registering this phone with the ward box…",
    wait_ward: "Loading the ward's patient list…",
    wait_choose_bed: "Waiting for you to choose a bed.",
    wait_camera: "Starting the camera…",
    wait_photo: "Waiting for you to take the photo.",
    wait_checkin: "Waiting for you to press Check in.",
    wait_sending: "Sending the photo to the ward box, then waiting for its answer…",
    wait_network: "No network: waiting for it to come back to send the saved photos.",
    wait_next: "Done. Waiting for the next patient.",
    wait_rejected: "Waiting for you: take the photo again, or go on to the next patient.",
    wait_done: "Waiting for you to press Done.",
    wait_checkin_again: "Waiting for you to press Check in again.",
    wait_refused: "Waiting for you to read the message above.",
    wait_enrol_link: "Waiting for the registration link (scan the QR code).",
    wait_start: "Waiting for you to press Start.",

    enrol_done_title: "This phone is registered",
    enrol_done_ward: "Ward: {ward}",
    enrol_done_name: "Phone of: {name}",
    enrol_done_bedside: "Use it to photograph each patient at the bed.",
    enrol_done_physician: "Use it to check in with your own face on the ward.",
    start: "Start",
    continue_phone: "Go on with this phone",
    retry: "Try again",
    wait_retry: "Waiting for you to press Try again.",
    not_enrolled_title: "This phone is not registered",
    not_enrolled_body: "Scan the registration QR code that the nurse in charge gives you.",
    enrol_failed_title: "Registration did not work",
    cannot_work_title: "The page cannot work here",
    wait_secure: "Waiting for the page to be opened through the secure address.",
    wait_browser: "Waiting for the page to be opened in an up-to-date Chrome.",
    err_insecure:
      "This page must be opened through the box's secure address (it starts with https://). Scan the QR code again, or ask the IT staff.",
    err_no_webcrypto: "This phone's browser is too old for this page. Use an up-to-date Chrome, or ask the IT staff.",
    err_no_storage: "This browser cannot keep data for the page (private mode?). Open it in a normal Chrome tab.",
    err_token_used: "This registration link has already been used. Ask the nurse in charge for a new link.",
    err_token_expired: "This registration link has expired. Ask the nurse in charge for a new link.",
    err_unknown_token: "This registration link is not valid. Check you scanned the right QR code, or ask for a new link.",
    err_network: "Cannot reach the ward box. Check the Wi-Fi, then press Try again.",
    err_server: "The ward box answered with an error: {message}",

    beds_title: "Choose the bed",
    bed: "Bed {bed}",
    beds_empty: "There are no inpatients on this ward's list.",
    beds_saved: "No network: this is the list saved at {time}.",
    beds_none: "No network and no saved list yet. Connect to the Wi-Fi, then press Refresh.",
    refresh: "Refresh the list",
    ward_line: "{ward} · {name}",

    camera_bed: "Bed {bed} · {patient}",
    camera_checkin: "Check in with your face",
    hint_bedside: "Show the patient's face clearly, with nobody else in the picture.",
    hint_checkin: "Hold the phone in front of your face, in good light.",
    take_photo: "Take the photo",
    check_in: "Check in",
    back: "Back",
    camera_denied: "The camera is blocked for this page. Allow the camera in the browser settings, then press Try again.",
    camera_missing: "No camera found on this phone.",
    camera_failed: "The camera did not start: {message}",
    position_ok: "Position found (within {m} m).",
    position_wait: "Finding the position…",
    position_denied: "Location is blocked for this page. Allow it in the browser settings: without a position the photo will be refused.",
    position_none: "Position not available. Turn on Location: without a position the photo will be refused.",

    saved_title: "Saved on this phone",
    saved_body: "There is no network now. The photo will be sent by itself when the network is back. You can go on.",
    saved_busy: "The ward box is busy. The photo is kept here and will be sent by itself in a moment. You can go on.",
    verdict_ok: "Accepted",
    verdict_bad: "Not accepted",
    verdict_ok_body: "Photo, place and time checked and recorded.",
    verdict_bad_body: "What was wrong:",
    verdict_late: "Sent late: taken at {time} while offline.",
    verdict_repeated: "This photo had been sent already; this is its result.",
    refused_title: "Refused by the ward box",
    next_patient: "Next patient",
    retake: "Take the photo again",
    done: "Done",
    checkin_again: "Check in again",
    taken_at: "Taken at {time}",
    checkin_of: "Your check-in",

    queue_title: "{n} waiting to send",
    queue_item: "{who} · taken at {time}",
    queue_send_now: "Send now",
    queue_next_try: "Next try in {s} s.",
    queue_offline: "Waiting for the network.",
    queue_sending: "Sending…",
    results_title: "Recent results",
    result_ok: "accepted",
    result_bad: "not accepted",
    result_refused: "refused",

    "reason.phone_revoked": "This phone has been withdrawn. Ask the nurse in charge.",
    "reason.too_many_pixels": "The photo is too large. Take it again.",
    "reason.not_an_image": "The photo could not be read. Take it again.",
    "reason.unsupported_format": "The photo could not be read. Take it again.",
    "reason.corrupt_image": "The photo arrived damaged. Take it again.",
    "reason.no_position": "The phone gave no position. Turn on Location, then take the photo again.",
    "reason.exif_position_disagrees": "The place written in the photo is not where the phone was.",
    "reason.position_too_vague": "The position was not precise enough. Wait a moment for a better position, then take the photo again.",
    "reason.outside_geofence": "The photo was not taken on the ward.",
    "reason.too_old": "The photo was kept too long before it was sent. Take a new one.",
    "reason.in_the_future": "The phone's clock is wrong. Set the time automatically in the phone's settings.",
    "reason.exif_time_disagrees": "The time written in the photo is not the time the phone says.",
    "reason.exact_replay": "This same photo was sent before. Take a new photo.",
    "reason.near_duplicate": "This photo is a copy of an earlier one. Take a new photo of the patient.",
    "reason.no_face": "No clear face in the photo. Take it again with the face visible and well lit.",
    "reason.several_faces": "More than one face in the photo. Only the patient should be in the picture.",
    "reason.not_the_claimed_person": "The face does not match patient {patient}. Check the bed and the patient.",
    "reason.not_enrolled": "This person's face is not registered yet. Tell the nurse in charge.",
    "reason.bed_empty": "The ward camera saw bed {bed} empty at that time.",
    "reason.not_on_this_ward": "This patient is not on this ward's list.",
    "reason.outside_geofence_by": "The photo was taken about {m} m outside the ward. Take it at the patient's bed.",
    "reason.bad_position": "The phone's position was wrong. Turn Location off and on again, then take the photo again.",
    "reason.bad_capture_time": "The phone sent a time the ward box cannot read. Set the time automatically in the phone's settings, then take the photo again.",
    "reason.wrong_mode": "This phone is registered for another use. Ask the nurse in charge.",
    "reason.no_patient": "No patient was chosen. Choose the bed first, then take the photo.",
    "reason.no_physician": "This phone is not registered to a physician. Ask the nurse in charge.",
    "reason.unknown_ward": "This phone's ward is no longer set up on the ward box. Ask the nurse in charge.",
    "reason.no_geofence": "The ward's area is not set up on the ward box. Tell the IT staff.",
    // A physician checks in with their own face: the same reasons, said to them.
    "reason.physician.outside_geofence": "You were not on the ward. Check in on the ward.",
    "reason.physician.outside_geofence_by": "You were about {m} m outside the ward. Check in on the ward.",
    "reason.physician.no_face": "No clear face in the photo. Hold the phone in front of your face, in good light.",
    "reason.physician.several_faces": "More than one face in the photo. Only you should be in the picture.",
    "reason.physician.not_the_claimed_person": "The face does not match yours. Check in again with your own face.",
    "reason.physician.not_enrolled": "Your face is not registered yet. Ask the nurse in charge.",

    "error.unknown_phone": "The ward box does not know this phone any more. Ask the nurse in charge for a new registration link.",
    "error.not_enrolled": "This phone's registration is not finished. Ask the nurse in charge for a new registration link.",
    "error.bad_signature": "The ward box could not confirm this phone sent the photo. Ask the nurse in charge to register the phone again.",
    "error.photo_hash_mismatch": "The photo changed on the way. Take it again.",
    "error.too_large": "The photo file is too large for the ward box.",
    "error.bad_request": "The ward box could not read the upload: {message}",
    "error.other": "The ward box refused the upload ({status}): {message}",
  },

  "zh-CN": {
    title: "病区手机",
    lang_switch: "English",
    lang_switch_label: "Switch to English (切换到英文)",
    wait_opening: "正在打开页面…",
    wait_enrolling: "正在向病区服务器登记本手机…",
    wait_ward: "正在加载本病区的住院患者名单…",
    wait_choose_bed: "请选择床位。",
    wait_camera: "正在打开摄像头…",
    wait_photo: "请拍照。",
    wait_checkin: "请按“签到”。",
    wait_sending: "正在把照片发送到病区服务器，等待核查结果…",
    wait_network: "无网络：等待网络恢复后发送已保存的照片。",
    wait_next: "已完成。请继续下一位患者。",
    wait_rejected: "请重新拍照，或继续下一位患者。",
    wait_done: "请按“完成”。",
    wait_checkin_again: "请按“重新签到”。",
    wait_refused: "请阅读上方的提示。",
    wait_enrol_link: "等待登记链接（请扫描二维码）。",
    wait_start: "请按“开始”。",

    enrol_done_title: "本手机已登记",
    enrol_done_ward: "病区：{ward}",
    enrol_done_name: "使用人：{name}",
    enrol_done_bedside: "用于在床旁为每位患者拍照核查。",
    enrol_done_physician: "用于在病区刷脸签到。",
    start: "开始",
    continue_phone: "继续使用本手机",
    retry: "重试",
    wait_retry: "请按“重试”。",
    not_enrolled_title: "本手机尚未登记",
    not_enrolled_body: "请扫描护士长提供的登记二维码。",
    enrol_failed_title: "登记未成功",
    cannot_work_title: "本页面无法在此使用",
    wait_secure: "等待通过安全地址打开本页面。",
    wait_browser: "等待在最新版 Chrome 中打开本页面。",
    err_insecure: "必须通过服务器的安全地址（以 https:// 开头）打开本页面。请重新扫描二维码，或联系信息科。",
    err_no_webcrypto: "本手机的浏览器版本过旧，无法使用本页面。请使用最新版 Chrome，或联系信息科。",
    err_no_storage: "本浏览器无法保存页面数据（可能是无痕模式）。请在普通 Chrome 标签页中打开。",
    err_token_used: "该登记链接已被使用。请向护士长索取新的链接。",
    err_token_expired: "该登记链接已过期。请向护士长索取新的链接。",
    err_unknown_token: "该登记链接无效。请确认扫描的是正确的二维码，或索取新的链接。",
    err_network: "无法连接病区服务器。请检查 Wi-Fi 后按“重试”。",
    err_server: "病区服务器返回错误：{message}",

    beds_title: "选择床位",
    bed: "{bed} 床",
    beds_empty: "本病区名单中没有住院患者。",
    beds_saved: "无网络：这是 {time} 保存的名单。",
    beds_none: "无网络，且尚无保存的名单。请连接 Wi-Fi 后按“刷新名单”。",
    refresh: "刷新名单",
    ward_line: "{ward} · {name}",

    camera_bed: "{bed} 床 · {patient}",
    camera_checkin: "刷脸签到",
    hint_bedside: "请拍清患者面部，画面中不要有其他人。",
    hint_checkin: "请在光线充足处把手机对准自己的面部。",
    take_photo: "拍照",
    check_in: "签到",
    back: "返回",
    camera_denied: "本页面的摄像头权限被禁止。请在浏览器设置中允许使用摄像头，然后按“重试”。",
    camera_missing: "本手机上没有找到摄像头。",
    camera_failed: "摄像头未能启动：{message}",
    position_ok: "已获取位置（误差 {m} 米以内）。",
    position_wait: "正在获取位置…",
    position_denied: "本页面的定位权限被禁止。请在浏览器设置中允许定位：没有位置，照片将不被接受。",
    position_none: "无法获取位置。请打开定位：没有位置，照片将不被接受。",

    saved_title: "已保存在手机上",
    saved_body: "当前没有网络。网络恢复后照片会自动发送。您可以继续工作。",
    saved_busy: "病区服务器正忙。照片已保存在手机上，稍后会自动发送。您可以继续工作。",
    verdict_ok: "已通过",
    verdict_bad: "未通过",
    verdict_ok_body: "照片、地点和时间均已核查并记录。",
    verdict_bad_body: "未通过的原因：",
    verdict_late: "延迟发送：拍摄于 {time}（离线期间保存）。",
    verdict_repeated: "这张照片之前已发送过；以下是它的结果。",
    refused_title: "病区服务器拒收",
    next_patient: "下一位患者",
    retake: "重新拍照",
    done: "完成",
    checkin_again: "重新签到",
    taken_at: "拍摄于 {time}",
    checkin_of: "您的签到",

    queue_title: "{n} 条待发送",
    queue_item: "{who} · 拍摄于 {time}",
    queue_send_now: "立即发送",
    queue_next_try: "{s} 秒后重试。",
    queue_offline: "正在等待网络恢复。",
    queue_sending: "正在发送…",
    results_title: "最近结果",
    result_ok: "已通过",
    result_bad: "未通过",
    result_refused: "被拒收",

    "reason.phone_revoked": "本手机已被停用。请联系护士长。",
    "reason.too_many_pixels": "照片尺寸过大。请重拍。",
    "reason.not_an_image": "照片无法读取。请重拍。",
    "reason.unsupported_format": "照片无法读取。请重拍。",
    "reason.corrupt_image": "照片传输中损坏。请重拍。",
    "reason.no_position": "手机没有提供位置。请打开定位后重拍。",
    "reason.exif_position_disagrees": "照片中记录的地点与手机所在位置不一致。",
    "reason.position_too_vague": "定位不够精确。请稍等定位更准确后重拍。",
    "reason.outside_geofence": "照片不是在本病区内拍摄的。",
    "reason.too_old": "照片保存太久才发送。请重新拍摄。",
    "reason.in_the_future": "手机时间不正确。请在手机设置中开启自动设置时间。",
    "reason.exif_time_disagrees": "照片中记录的时间与手机时间不一致。",
    "reason.exact_replay": "这张照片以前发送过。请重新拍摄。",
    "reason.near_duplicate": "这张照片是之前照片的翻拍或复制。请为患者重新拍摄。",
    "reason.no_face": "照片中没有清晰的面部。请在光线充足处拍清面部后重拍。",
    "reason.several_faces": "照片中有不止一张面孔。画面中应只有患者本人。",
    "reason.not_the_claimed_person": "面部与患者 {patient} 不符。请核对床位和患者。",
    "reason.not_enrolled": "此人尚未登记面部信息。请告知护士长。",
    "reason.bed_empty": "病房摄像头显示当时 {bed} 床无人。",
    "reason.not_on_this_ward": "该患者不在本病区名单中。",
    "reason.outside_geofence_by": "拍照时手机在病区外约 {m} 米。请在患者床旁拍摄。",
    "reason.bad_position": "手机提供的位置有误。请关闭再打开定位后重拍。",
    "reason.bad_capture_time": "手机发送的时间病区服务器无法识别。请在手机设置中开启自动设置时间后重拍。",
    "reason.wrong_mode": "本手机登记的用途与此不符。请联系护士长。",
    "reason.no_patient": "没有选择患者。请先选择床位再拍照。",
    "reason.no_physician": "本手机未登记给医生使用。请联系护士长。",
    "reason.unknown_ward": "病区服务器上已没有本手机所属病区的设置。请联系护士长。",
    "reason.no_geofence": "病区服务器上尚未设置本病区的范围。请告知信息科。",
    "reason.physician.outside_geofence": "签到时您不在本病区内。请在病区内签到。",
    "reason.physician.outside_geofence_by": "签到时您在病区外约 {m} 米。请在病区内签到。",
    "reason.physician.no_face": "照片中没有清晰的面部。请在光线充足处把手机对准自己的面部。",
    "reason.physician.several_faces": "照片中有不止一张面孔。画面中应只有您本人。",
    "reason.physician.not_the_claimed_person": "面部与您登记的不符。请用本人面部重新签到。",
    "reason.physician.not_enrolled": "您的面部信息尚未登记。请联系护士长。",

    "error.unknown_phone": "病区服务器已不认识本手机。请向护士长索取新的登记链接。",
    "error.not_enrolled": "本手机的登记尚未完成。请向护士长索取新的登记链接。",
    "error.bad_signature": "病区服务器无法确认照片来自本手机。请护士长重新登记本手机。",
    "error.photo_hash_mismatch": "照片在传输中被改动。请重拍。",
    "error.too_large": "照片文件过大，病区服务器无法接收。",
    "error.bad_request": "病区服务器无法读取上传内容：{message}",
    "error.other": "病区服务器拒绝了上传（{status}）：{message}",
  },
};

let current = "en";

// The language the phone asks for: Chinese for any zh-* locale, English otherwise.
export function detectLanguage(saved) {
  if (saved && STRINGS[saved]) return saved;
  const wanted = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return wanted.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export function setLanguage(lang) {
  current = STRINGS[lang] ? lang : "en";
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

export function has(key) {
  return key in STRINGS[current];
}

// The string for `key` with `{name}` replaced from `vars`; the English one when a language lacks it.
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// A capture time as the ward reads it: the time of day, with the date when it is not today.
export function formatTime(iso) {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  const options = today
    ? { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  return new Intl.DateTimeFormat(current, options).format(date);
}
