// The viewer's own part in the stage's audio and video: "Join the stage" (after agreeing to be
// recorded, transcribed and published), mute, camera off, screen share, stop / leave, and for the
// audience "Watch and listen live", the live seat limit and the viewer count. Everything that
// happens to the viewer is said in words, on screen and to screen readers.

import { sentence } from "./composer.js";
import { mediaErrorText, seatsFullText } from "./media.js";
import { isOnStage } from "./person.js";

// Why the node stopped a publication (media.ended codes, docs/protocol.md).
const ENDED_TEXT = {
  stage_left: "You are no longer on stage, so your camera and microphone are off.",
  blocked: "A host has removed you from the stage, so your camera and microphone are off.",
  conversation_ended: "The conversation has ended, so your camera and microphone are off.",
  replaced: "You went live from another window or device, so this one stopped sending.",
};

export class StageControls {
  constructor(root, ctx, store, media, stage) {
    this.ctx = ctx;
    this.store = store;
    this.media = media;
    this.stage = stage;
    const q = (selector) => root.querySelector(selector);
    this.group = q(".media-controls");
    this.joinButton = q(".join-stage-button");
    this.muteButton = q(".mute-button");
    this.cameraButton = q(".camera-button");
    this.screenButton = q(".screen-button");
    this.stopButton = q(".stop-media-button");
    this.leaveButton = q(".leave-stage-button");
    this.inviteNote = q(".stage-invite-note");
    this.mediaNote = q(".media-note");
    this.watchBox = q(".watch-box");
    this.watchButton = q(".watch-button");
    this.seatsFull = q(".seats-full");
    this.viewerCount = q(".viewer-count");
    this.myQuality = q(".my-quality");
    this.dialog = document.getElementById("consent-dialog");
    this.consentCheck = document.getElementById("consent-check");
    this.consentAccept = this.dialog.querySelector(".consent-accept");
    this.consentError = this.dialog.querySelector(".consent-error");
    this.invited = false; // brought on stage while this page was open
    this.joining = false;

    this.joinButton.addEventListener("click", () => this.join());
    this.muteButton.addEventListener("click", () => this.toggleMute());
    this.cameraButton.addEventListener("click", () => this.toggleCamera());
    this.screenButton.addEventListener("click", () => this.toggleScreen());
    this.stopButton.addEventListener("click", () => this.stopMedia());
    this.leaveButton.addEventListener("click", () => this.leave());
    this.watchButton.addEventListener("click", () => this.watch());
    this.consentAccept.addEventListener("click", () => this.acceptConsent());
    this.dialog.querySelector(".consent-cancel").addEventListener("click", () => this.dialog.close("cancel"));
    this.dialog.addEventListener("close", () => this.onDialogClose());

    for (const type of ["state", "publishers", "viewers", "quality"]) {
      media.addEventListener(type, () => this.render());
    }
    media.addEventListener("viewers", () => {
      // A seat came free: offer watching again.
      if (media.seatsFull && media.viewers !== null && media.maxViewers !== null && media.viewers < media.maxViewers) {
        media.seatsFull = false;
        this.render();
      }
    });
    media.addEventListener("problem", (ev) => this.onProblem(ev.detail));
    media.addEventListener("ended", (ev) => this.onEnded(ev.detail));
    stage.addEventListener("sound", () => this.render());
    stage.addEventListener("mine", () => this.render());
  }

  myEntry() {
    const id = this.ctx.me.user_id;
    return id !== null ? this.store.people.get(id) : undefined;
  }

  myRole() {
    return this.myEntry()?.role || this.ctx.me.role || "audience";
  }

  render() {
    const m = this.media;
    const identity = this.ctx.hasIdentity();
    const role = this.myRole();
    const onStage = identity && isOnStage(role);
    const blocked = Boolean(this.myEntry()?.blocked || this.ctx.me.blocked);
    const canGoLive = onStage && !blocked && m.mayPublishNow(this.ctx.conversation?.state);
    const live = m.isPublishing("camera");

    this.joinButton.hidden = !canGoLive || live;
    this.joinButton.disabled = this.joining;
    this.joinButton.setAttribute("aria-busy", String(this.joining));
    this.inviteNote.hidden = this.joinButton.hidden;
    this.inviteNote.textContent = this.invited
      ? "You are invited on stage. Join when you are ready: your camera and microphone go live after you agree to being recorded."
      : "Join the stage to turn on your camera and microphone.";
    for (const button of [this.muteButton, this.cameraButton, this.stopButton]) button.hidden = !live;
    this.screenButton.hidden = !live || !navigator.mediaDevices?.getDisplayMedia;
    this.muteButton.setAttribute("aria-pressed", String(m.audioMuted));
    this.cameraButton.setAttribute("aria-pressed", String(m.videoOff));
    this.cameraButton.disabled = live && !m.localStream?.getVideoTracks().length;
    this.screenButton.setAttribute("aria-pressed", String(m.isPublishing("screen")));
    // Speakers step down with "Leave the stage" (which also stops sending); hosts stay on
    // stage and only switch their camera and microphone off.
    this.stopButton.hidden = !live || role === "speaker";
    this.leaveButton.hidden = !identity || role !== "speaker" || this.ctx.isOver();
    this.group.hidden = [this.joinButton, this.muteButton].every((b) => b.hidden);

    const others = m.othersPublishing(this.ctx.me.user_id);
    const wantsClick = (!m.subscribed && others) || (m.subscribed && this.stage.soundBlocked);
    this.watchBox.hidden = !m.available || m.seatsFull || !wantsClick;
    this.seatsFull.hidden = !m.seatsFull;
    if (m.seatsFull) this.seatsFull.textContent = seatsFullText(m.maxViewers);
    this.viewerCount.hidden = !m.viewers || !m.available;
    this.viewerCount.textContent = m.viewers === null ? "" : `${m.viewers} watching live`;
    const showQuality = Boolean(m.quality) && (m.subscribed || live);
    this.myQuality.hidden = !showQuality;
    this.myQuality.dataset.level = m.quality || "";
    this.myQuality.textContent = showQuality ? `Your connection: ${m.quality}` : "";
  }

  note(text) {
    this.mediaNote.textContent = text;
    this.mediaNote.hidden = !text;
  }

  // ---- going live ----------------------------------------------------------------------------

  join() {
    this.stage.showError("");
    if (this.myEntry()?.consented) this.goLive();
    else this.openConsent();
  }

  openConsent() {
    if (this.dialog.open) return;
    this.consentCheck.checked = false;
    this.consentError.hidden = true;
    this.consentAccept.disabled = false;
    this.consentGiven = false;
    // showModal makes the rest of the page inert and moves focus into the dialog; Escape closes it.
    this.dialog.showModal();
    this.consentCheck.focus();
  }

  async acceptConsent() {
    if (!this.consentCheck.checked) {
      this.consentError.textContent = "Please tick the box to agree, or choose Cancel.";
      this.consentError.hidden = false;
      this.consentCheck.focus();
      return;
    }
    this.consentAccept.disabled = true;
    try {
      await this.ctx.send({ type: "media.consent" });
      const entry = this.myEntry();
      if (entry) entry.consented = true; // the stage.consent event says so too
      this.consentGiven = true;
      this.dialog.close("agreed");
      this.goLive();
    } catch (err) {
      this.consentError.textContent = sentence(err.message);
      this.consentError.hidden = false;
    } finally {
      this.consentAccept.disabled = false;
    }
  }

  onDialogClose() {
    // Back to where the person was (WAI-ARIA dialog pattern), unless they are going live,
    // which moves focus to the microphone button.
    if (!this.consentGiven && !this.joinButton.hidden) this.joinButton.focus();
  }

  async goLive() {
    if (this.joining) return;
    this.joining = true;
    this.note("");
    this.render();
    this.ctx.announce("Turning on your camera and microphone…");
    // People on stage watch the others as soon as they join (a click: sound may play).
    this.media.subscribe();
    const ok = await this.media.publish("camera");
    this.joining = false;
    this.render();
    if (ok) {
      this.ctx.announce(this.media.localStream?.getVideoTracks().length
        ? "You are live on stage: your camera and microphone are on."
        : "You are live on stage with your microphone (no camera was found).");
      if (!this.muteButton.hidden) this.muteButton.focus();
    }
  }

  toggleMute() {
    const muted = !this.media.audioMuted;
    this.media.setAudioMuted(muted);
    this.ctx.announce(muted ? "Your microphone is muted." : "Your microphone is on.");
  }

  toggleCamera() {
    const off = !this.media.videoOff;
    this.media.setVideoOff(off);
    this.ctx.announce(off ? "Your camera is off." : "Your camera is on.");
  }

  async toggleScreen() {
    if (this.media.isPublishing("screen")) {
      this.media.stopPublishing("screen");
      this.ctx.announce("You stopped sharing your screen.");
      return;
    }
    if (await this.media.publish("screen")) this.ctx.announce("You are sharing your screen.");
  }

  stopMedia() {
    this.media.stopAll();
    this.ctx.announce("Your camera and microphone are off.");
    this.render();
    if (!this.joinButton.hidden) this.joinButton.focus();
  }

  async leave() {
    this.stage.showError("");
    // Stop sending at once; keep watching the others from the audience.
    this.media.stopAll();
    this.render();
    try {
      await this.ctx.send({ type: "stage.leave" });
    } catch (err) {
      this.stage.showError(err.message);
    }
  }

  // ---- watching ------------------------------------------------------------------------------

  async watch() {
    const hadFocus = document.activeElement === this.watchButton;
    this.stage.showError("");
    // This click is the user gesture the browser's autoplay policy wants before sound plays.
    this.stage.resumeSound();
    if (!this.media.subscribed) {
      if (await this.media.subscribe()) this.ctx.announce("You are watching and listening live.");
    }
    this.render();
    // The button is gone: keep keyboard focus on the stage rather than lose it to the page.
    if (this.watchBox.hidden && hadFocus) {
      document.getElementById("stage-heading")?.focus();
    }
  }

  // ---- what happens to us --------------------------------------------------------------------

  /** The room stream says our role changed (stage.role for us). */
  onMyRole(before, role) {
    if (isOnStage(role) && !isOnStage(before)) this.invited = true;
    if (!isOnStage(role) && isOnStage(before)) {
      // Sent back to the audience: stop sending now, keep watching.
      this.invited = false;
      if (this.dialog.open) this.dialog.close("cancel");
      if (this.media.isPublishing("camera") || this.media.isPublishing("screen")) {
        this.media.stopAll();
        this.note("You are back in the audience, so your camera and microphone are off. You are still watching.");
      }
    }
    this.render();
  }

  onProblem({ code, message, target }) {
    if (code === "consent_required") {
      this.openConsent();
      return;
    }
    this.render();
    if (code === "seats_full") {
      this.ctx.announce(seatsFullText(this.media.maxViewers));
      return;
    }
    const text = mediaErrorText(code, { maxViewers: this.media.maxViewers, target })
      || sentence(message) || "Something went wrong with the audio and video. Please try again.";
    if (message) console.warn("junto media:", code, message);
    this.stage.showError(text);
  }

  onEnded({ source, code, reason }) {
    this.render();
    let text = ENDED_TEXT[code];
    if (code === "ice_failed") text = mediaErrorText("ice_failed", { target: source });
    if (source === "screen" && code !== "ice_failed") text = "Your screen share has stopped.";
    text = text || sentence(reason) || "The server stopped your camera and microphone.";
    this.note(text);
    this.ctx.announce(text);
  }
}
