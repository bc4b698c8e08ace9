// The camera and the position. The photo is the camera frame drawn on a canvas and encoded once as
// JPEG (quality 0.9): those bytes are hashed, signed and sent unchanged. The position comes from the
// Geolocation API with its accuracy radius, watched while the camera is open so it is ready (and
// current) when the shutter is pressed.

const POSITION_MAX_AGE_MS = 60 * 1000;

let stream = null;
let watch = null;
let latest = null;
let positionError = null;

// Starts the camera facing `facing` ("environment": the back camera for a patient, "user": the
// front one for a physician's own face) into `video`.
export async function start(video, facing) {
  stop();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const e = new Error("getUserMedia unavailable");
    e.name = "NotFoundError";
    throw e;
  }
  stream = await navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { facingMode: facing, width: { ideal: 1280 }, height: { ideal: 960 } },
  });
  video.srcObject = stream;
  await video.play().catch(() => {});
  if (!video.videoWidth) {
    await new Promise((resolve) => video.addEventListener("loadedmetadata", resolve, { once: true }));
  }
}

export function stop() {
  if (stream) {
    for (const track of stream.getTracks()) track.stop();
    stream = null;
  }
}

export function running() {
  return stream !== null;
}

// The current frame as a JPEG Blob.
export function capture(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the photo could not be encoded"))), "image/jpeg", 0.9),
  );
}

// Watches the position; `onUpdate(state)` with state {position} | {error: "denied"|"unavailable"}.
export function watchPosition(onUpdate) {
  stopPosition();
  if (!("geolocation" in navigator)) {
    positionError = "unavailable";
    onUpdate({ error: positionError });
    return;
  }
  watch = navigator.geolocation.watchPosition(
    (p) => {
      latest = {
        at: Date.now(),
        position: { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy },
      };
      positionError = null;
      onUpdate({ position: latest.position });
    },
    (e) => {
      positionError = e.code === e.PERMISSION_DENIED ? "denied" : "unavailable";
      onUpdate({ error: positionError });
    },
    { enableHighAccuracy: true, maximumAge: 10000, timeout: 20000 },
  );
}

export function stopPosition() {
  if (watch !== null) navigator.geolocation.clearWatch(watch);
  watch = null;
}

// The position to sign with a photo taken now: the watched one when fresh, else one more try
// (a few seconds), else none (the box then refuses the check with `no_position`, and says so).
export async function positionNow() {
  if (latest && Date.now() - latest.at < POSITION_MAX_AGE_MS) return latest.position;
  if (!("geolocation" in navigator) || positionError === "denied") return null;
  return new Promise((resolve) => {
    // Some browsers never call back at all (location switched off at the system level): give up too.
    const giveUp = setTimeout(() => resolve(null), 6000);
    navigator.geolocation.getCurrentPosition(
      (p) => {
        clearTimeout(giveUp);
        resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy });
      },
      () => {
        clearTimeout(giveUp);
        resolve(null);
      },
      { enableHighAccuracy: true, maximumAge: POSITION_MAX_AGE_MS, timeout: 5000 },
    );
  });
}
