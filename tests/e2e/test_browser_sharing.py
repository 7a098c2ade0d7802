"""Sharing as two people use it: a team joined by invitation, a viewer watching live, a revocation, a public
link; and an invitation declined, a team blocked and unblocked, joined and left.

Real headless Chromium browsers (each its own profile, so its own cookies) against a real
daphne process with the offline demo model.
"""

import time

import pytest

from tests.e2e.browser import (
    by_id,
    choose,
    css,
    enter,
    flash,
    last_reply,
    log_in,
    not_found,
    replaced,
    require_chromium,
    screenshot,
    severe_errors,
    type_and_send,
    waiter,
)
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

PASSWORDS = {"ann": "ann-password-123", "ben": "ben-password-123"}
REVOKED = "Your access to this conversation was removed."


@pytest.fixture(scope="module")
def sharing_app(tmp_path_factory):
    """The app served by daphne with the demo model, ann and ben."""
    require_chromium()
    # A reply streams one word every 30 ms: a few seconds, long enough to watch it grow.
    directory = tmp_path_factory.mktemp("browser-sharing")
    with demo_app(directory, users=list(PASSWORDS.items()), demo_delay="0.03") as server:
        yield server


# --- helpers ----------------------------------------------------------------------


def dialog_open(driver) -> bool:
    return by_id(driver, "share-dialog").get_attribute("open") is not None


def reply_done(driver, count: int) -> bool:
    replies = css(driver, "li.message--assistant")
    return len(replies) == count and replies[-1].get_attribute("data-status") == "complete"


def start_conversation(driver, base_url: str, text: str) -> str:
    """A new chat with one exchange, as from the home page; returns its address."""
    from selenium.webdriver.common.keys import Keys

    driver.get(base_url + "/")
    by_id(driver, "new-chat-input").send_keys(text + Keys.ENTER)
    waiter(driver).until(lambda d: "/c/" in d.current_url)
    waiter(driver, 30).until(lambda d: reply_done(d, 1))
    return driver.current_url.split("#")[0]


def open_share_dialog(driver) -> None:
    by_id(driver, "share-button").click()
    waiter(driver).until(dialog_open)


def submit_in(driver, form_selector: str) -> None:
    """Press the submit button of a form in the Share dialog, and wait for the page it comes back to."""
    button = css(driver, f"{form_selector} button[type=submit]")[0]
    button.click()
    waiter(driver).until(replaced(button))
    # Back on the conversation at #share: the dialog opens by itself.
    waiter(driver).until(lambda d: d.current_url.endswith("#share") and dialog_open(d))


def go_home(driver, base_url: str) -> None:
    driver.get(base_url + "/")
    waiter(driver).until(lambda d: css(d, "#new-chat-input"))


def title_is(text: str):
    from selenium.webdriver.common.by import By

    return lambda driver: driver.find_element(By.CSS_SELECTOR, "h1.topbar-title").text == text


def create_team(driver, name: str) -> None:
    """On the Teams page: create the team `name`, and wait for its page."""
    enter(driver, "id_name", name)
    css(driver, ".team-create-form button[type=submit]")[0].click()
    waiter(driver).until(title_is(f"Team {name}"))


def invite(driver, username: str) -> None:
    """On a team's page: invite `username`, and wait for the answer, the same whoever the name belongs to."""
    enter(driver, "id_username", username)
    css(driver, ".invite-form button[type=submit]")[0].click()
    waiter(driver).until(lambda d: f"If someone called {username} is on this site, they have been invited." in flash(d))


def member_names(driver) -> list[str]:
    """The Person column of a team's page."""
    return [cell.text for cell in css(driver, "table.members tbody tr td:first-child")]


def invitation_texts(driver) -> list[str]:
    return [item.text for item in css(driver, ".invitation-text")]


def open_teams_page(driver) -> None:
    """Teams, from the sidebar (its link carries the count of invitations waiting)."""
    css(driver, ".account a[href='/teams/']")[0].click()
    waiter(driver).until(title_is("Teams"))


def answer_invitation(driver, text: str, button: str) -> None:
    """From the sidebar to the Teams page, and press `button` beside the invitation that reads `text`."""
    from selenium.webdriver.common.by import By

    open_teams_page(driver)
    invitations = css(driver, "li.invitation")
    (invitation,) = [item for item in invitations if item.find_element(By.CSS_SELECTOR, ".invitation-text").text == text]
    invitation.find_element(By.XPATH, f".//button[normalize-space()='{button}']").click()


# --- the scenario ---------------------------------------------------------------------


def test_team_share_watch_live_and_revoke(sharing_app, open_browser):
    from selenium.webdriver.common.by import By

    url = sharing_app.url
    ann, ben = open_browser(), open_browser()

    # 1. ann makes a team, "Core", through the Teams page, and invites ben by username; ben, in his own
    #    browser, sees the invitation counted beside Teams, and accepts it.
    log_in(ann, url, "ann", PASSWORDS["ann"])
    ann.find_element(By.LINK_TEXT, "Teams").click()
    waiter(ann).until(lambda d: d.find_element(By.CSS_SELECTOR, "h1.topbar-title").text == "Teams")
    assert "You are in no team yet." in ann.page_source
    create_team(ann, "Core")
    invite(ann, "ben")
    assert member_names(ann) == ["ann (you)"]  # not until he accepts

    log_in(ben, url, "ben", PASSWORDS["ben"])
    assert by_id(ben, "invitation-count").text == "1"
    answer_invitation(ben, "ann invites you to Core as member.", "Accept")
    waiter(ben).until(lambda d: "You joined Core." in flash(d))
    assert ben.find_element(By.CSS_SELECTOR, "h1.topbar-title").text == "Team Core"
    assert not css(ben, "#invitation-count")
    ann.refresh()
    waiter(ann).until(lambda d: member_names(d) == ["ann (you)", "ben"])

    # 2. ann starts a conversation and shares it with ben as a viewer.
    conversation_url = start_conversation(ann, url, "What should the team know?")
    conversation_id = conversation_url.rstrip("/").rsplit("/", 1)[-1]
    open_share_dialog(ann)
    assert not css(ann, "#share-list")
    choose(ann, "id_target", "ben")
    choose(ann, "id_role", "Viewer")
    submit_in(ann, ".share-form")
    assert "Shared with ben as viewer." in flash(ann)
    share_list = by_id(ann, "share-list")
    assert share_list.find_element(By.CSS_SELECTOR, ".share-target").text == "ben"
    assert share_list.find_element(By.CSS_SELECTOR, "select").get_attribute("value") == "viewer"

    # 3. ben, in his own browser, finds it under "Shared with me" with ann's name, and opens it.
    go_home(ben, url)
    assert by_id(ben, "shared-heading").text.lower() == "shared with me"  # shown in capitals by CSS
    shared = ben.find_element(By.CSS_SELECTOR, f".shared-list a[href='/c/{conversation_id}/']")
    assert shared.text == "What should the team know? · ann"
    shared.click()
    waiter(ben).until(lambda d: d.current_url.split("#")[0] == conversation_url)
    assert not css(ben, "#composer") and not css(ben, "#composer-input")
    assert by_id(ben, "read-only-note").text == (
        "You can read and watch this conversation; ann shared it with you as a viewer."
    )
    assert not css(ben, "#share-button")
    assert reply_done(ben, 1)  # the first exchange is there, rendered
    # Presence, both ways.
    waiter(ben).until(lambda d: by_id(d, "presence").is_displayed() and by_id(d, "presence").text == "Also here: ann")
    waiter(ann).until(lambda d: by_id(d, "presence").text == "Also here: ben")
    screenshot(ann, "sharing-dialog.png")  # the dialog, still open after the share, listing ben

    # 4. ann asks again; ben watches the reply stream in, without reloading.
    ben.execute_script("window.sameDocument = true;")
    ann.find_element(By.CSS_SELECTOR, "#share-dialog .dialog-head button").click()  # ✕
    waiter(ann).until(lambda d: not dialog_open(d))
    type_and_send(ann, "composer-input", "And the second point?")

    seen = {"lengths": set(), "screenshot": False}

    def watched_it_grow(driver) -> bool:
        reply = last_reply(driver)
        if reply is None or len(css(driver, "li.message--assistant")) != 2:
            return False
        if "is-streaming" in reply.get_attribute("class").split():
            length = len(reply.find_element(By.CSS_SELECTOR, ".message-body").text)
            if length:
                seen["lengths"].add(length)
            if length > 120 and not seen["screenshot"]:
                screenshot(driver, "viewer-live.png")
                # Streaming before and after the picture: it shows the reply mid-stream.
                seen["screenshot"] = "is-streaming" in last_reply(driver).get_attribute("class").split()
        return len(seen["lengths"]) >= 3 and seen["screenshot"]

    waiter(ben, 20).until(watched_it_grow)
    waiter(ben, 30).until(lambda d: "is-complete" in last_reply(d).get_attribute("class").split())
    assert ben.execute_script("return window.sameDocument === true;"), "ben's page reloaded"
    asked = css(ben, "li.message--user .message-body")[-1].text
    assert asked == "And the second point?"
    body = last_reply(ben).find_element(By.CSS_SELECTOR, ".message-body")
    assert body.find_element(By.TAG_NAME, "strong").text == "Demo model"  # rendered, not raw Markdown
    assert "And the second point?" in body.find_element(By.TAG_NAME, "blockquote").text
    waiter(ann, 30).until(lambda d: reply_done(d, 2))
    assert severe_errors(ben) == []

    # 5. ann revokes ben's share; ben's page says so at once.
    ben.execute_script(
        """
        const error = document.getElementById("chat-error");
        window.revokedAt = null;
        new MutationObserver(() => {
          if (!error.hidden && error.textContent && window.revokedAt === null) window.revokedAt = Date.now();
        }).observe(error, {attributes: true, childList: true, characterData: true, subtree: true});
        """
    )
    open_share_dialog(ann)
    revoke = ann.find_element(By.CSS_SELECTOR, "#share-list form[action$='/revoke/'] button")
    assert revoke.text == "Revoke"
    clicked_at = time.time() * 1000  # the same clock as the browsers' Date.now(): one machine
    revoke.click()
    waiter(ben, 5).until(lambda d: by_id(d, "chat-error").is_displayed() and by_id(d, "chat-error").text == REVOKED)
    took_ms = ben.execute_script("return window.revokedAt;") - clicked_at
    print(f"revocation shown on ben's page {took_ms:.0f} ms after ann clicked Revoke")
    assert 0 < took_ms < 2000
    assert not by_id(ben, "presence").is_displayed()
    assert ben.execute_script("return window.sameDocument === true;")

    waiter(ann).until(lambda d: "ben no longer has access." in flash(d) and dialog_open(d))
    assert not css(ann, "#share-list")
    assert severe_errors(ben) == []

    ben.refresh()
    waiter(ben).until(not_found)
    ben.get(url + "/")
    waiter(ben).until(lambda d: css(d, "#new-chat-input"))
    assert not css(ben, f"a[href='/c/{conversation_id}/']") and not css(ben, "#shared-heading")


def test_public_snapshot_link_opens_logged_out_then_is_deleted(sharing_app, open_browser):
    from selenium.webdriver.common.by import By

    url = sharing_app.url
    ann, stranger = open_browser(), open_browser()

    log_in(ann, url, "ann", PASSWORDS["ann"])
    start_conversation(ann, url, "A question for the world")
    open_share_dialog(ann)
    choose(ann, "id_kind", "Snapshot (as it is now)")
    choose(ann, "id_audience", "Anyone with the link")
    submit_in(ann, ".link-form")
    assert "Public link created." in flash(ann)
    link_url = by_id(ann, "link-list").find_element(By.CSS_SELECTOR, "input.link-url").get_attribute("value")
    assert link_url.startswith(url + "/s/")

    # Someone with no account here opens it: the conversation, read-only, kept out of search engines.
    stranger.get(link_url)
    waiter(stranger).until(lambda d: css(d, "main.public li.message--assistant"))
    assert stranger.find_element(By.ID, "conversation-title").text == "A question for the world"
    assert [item.text for item in css(stranger, "li.message--user")] == ["A question for the world"]
    reply = css(stranger, "li.message--assistant .message-body")[0]
    assert reply.find_element(By.TAG_NAME, "strong").text == "Demo model"
    assert "A question for the world" in reply.find_element(By.TAG_NAME, "blockquote").text
    robots = stranger.find_element(By.CSS_SELECTOR, "meta[name=robots]").get_attribute("content")
    assert "noindex" in robots
    assert "Log in" in stranger.find_element(By.CSS_SELECTOR, ".public-head").text
    assert not css(stranger, "#composer") and not css(stranger, ".sidebar")

    # ann deletes the link: it no longer opens.
    delete = ann.find_element(By.CSS_SELECTOR, "#link-list form[action$='/delete/'] button")
    assert delete.text == "Delete link"
    delete.click()
    waiter(ann).until(lambda d: "Public link deleted; it no longer opens." in flash(d) and dialog_open(d))
    assert not css(ann, "#link-list")

    stranger.refresh()
    waiter(stranger).until(not_found)
    assert not css(stranger, "li.message")


def test_decline_block_unblock_accept_and_leave(sharing_app, open_browser):
    """ben says no, then blocks ann's team, unblocks it, joins, and leaves: the team's conversation then
    leaves his sidebar, and the tab he had it open in is told at once."""
    from selenium.webdriver.common.by import By

    url = sharing_app.url
    ann, ben = open_browser(), open_browser()
    log_in(ann, url, "ann", PASSWORDS["ann"])
    log_in(ben, url, "ben", PASSWORDS["ben"])

    # ann makes "Guild" and invites ben, and a name nobody has: the page answers both alike.
    open_teams_page(ann)
    create_team(ann, "Guild")
    team_url = ann.current_url
    invite(ann, "nobody-here")
    invite(ann, "ben")

    # ben declines: the invitation and its count go.
    go_home(ben, url)
    assert by_id(ben, "invitation-count").text == "1"
    answer_invitation(ben, "ann invites you to Guild as member.", "Decline")
    waiter(ben).until(lambda d: "You declined the invitation to Guild." in flash(d))
    assert invitation_texts(ben) == [] and not css(ben, "#invitation-count")

    # ann asks again; ben blocks the team, and ann's next invitation does not reach him.
    invite(ann, "ben")
    go_home(ben, url)
    answer_invitation(ben, "ann invites you to Guild as member.", "Block this team")
    waiter(ben).until(lambda d: "You blocked Guild: its owners can no longer invite you." in flash(d))
    invite(ann, "ben")
    ben.refresh()
    assert invitation_texts(ben) == [] and not css(ben, "#invitation-count")
    (blocked,) = css(ben, ".blocked-list li")
    assert blocked.text.startswith("Guild")

    # ben unblocks it; ann's invitation reaches him, and he accepts.
    blocked.find_element(By.XPATH, ".//button[normalize-space()='Unblock']").click()
    waiter(ben).until(lambda d: "You unblocked Guild: its owners can invite you again." in flash(d))
    assert not css(ben, ".blocked-list")
    invite(ann, "ben")
    go_home(ben, url)
    answer_invitation(ben, "ann invites you to Guild as member.", "Accept")
    waiter(ben).until(lambda d: "You joined Guild." in flash(d))

    # ann shares a conversation with the whole team; ben has it open.
    conversation_url = start_conversation(ann, url, "For the guild")
    conversation_id = conversation_url.rstrip("/").rsplit("/", 1)[-1]
    open_share_dialog(ann)
    choose(ann, "id_target", "Guild (everyone in it)")
    submit_in(ann, ".share-form")
    ben.get(conversation_url)
    waiter(ben).until(lambda d: by_id(d, "presence").is_displayed() and by_id(d, "presence").text == "Also here: ann")
    chat_tab = ben.current_window_handle

    # In another tab ben leaves the team: the conversation leaves his sidebar, and his first tab says so.
    ben.switch_to.new_window("tab")
    ben.get(team_url)
    waiter(ben).until(title_is("Team Guild"))
    leave = ben.find_element(By.XPATH, "//table[@class='members']//button[normalize-space()='Leave']")
    leave.click()
    waiter(ben).until(lambda d: "You left Guild." in flash(d))
    assert not css(ben, f".shared-list a[href='/c/{conversation_id}/']")
    ben.switch_to.window(chat_tab)
    waiter(ben, 5).until(lambda d: by_id(d, "chat-error").is_displayed() and by_id(d, "chat-error").text == REVOKED)
    assert severe_errors(ben) == []

    ann.get(team_url)
    waiter(ann).until(lambda d: member_names(d) == ["ann (you)"])
