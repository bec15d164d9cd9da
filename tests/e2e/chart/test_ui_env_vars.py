"""The home page's editor of a user's own environment variables, in Chromium (desktop and phone): a user adds a
variable and saves it, a refused name is shown with the rule, and what was saved is what the API returns."""

from __future__ import annotations

import pytest

from ..browser import PHONE, login, sync_api
from ..hubclient import new_user

expect = sync_api.expect

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_user_saves_variables_and_sees_a_refusal_with_its_names(hub, admin, username, new_page, device):
    user = new_user(hub.url, admin, username)
    page = new_page(**(PHONE if device == "phone" else {}))
    login(page, hub.url, username)
    card = page.locator("#ds-env")
    expect(card).to_be_visible()
    row = card.locator(".ds-env-row").last
    row.locator(".ds-env-name").fill("JUPYTERHUB_API_TOKEN")
    row.locator(".ds-env-value").fill("forged")
    page.click("#ds-env-save")
    expect(page.locator("#ds-env-error")).to_contain_text("JUPYTERHUB_API_TOKEN")
    row.locator(".ds-env-name").fill("HF_TOKEN")
    row.locator(".ds-env-value").fill("hf-secret")
    row.locator(".ds-env-description").fill("Hugging Face")
    page.click("#ds-env-save")
    expect(page.locator("#ds-env-saved")).to_be_visible()
    expect(page.locator("#ds-env-error")).to_be_hidden()
    assert user.api("GET", f"/users/{username}/env-vars").json()["env_vars"] == [
        {"name": "HF_TOKEN", "value": "hf-secret", "description": "Hugging Face"}]
    page.reload()
    expect(card.locator(".ds-env-name").first).to_have_value("HF_TOKEN")
