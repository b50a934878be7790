"""Key names on every door: something visible, no bidi controls, no key hidden by invisible characters;
names stored before these rules still shown safely."""

import unicodedata

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apikeys import crypto, lifecycle, text
from apikeys.models import ApiKey, validate_key_name
from apikeys.templatetags.key_names import NO_VISIBLE_NAME

from .helpers import issue, make_owner
from .web.pages import sign_in

pytestmark = pytest.mark.django_db

KEY = "omi_dev_" + "0123456789abcdef" * 2

INVISIBLE = [
    "\u200b\u200d",  # zero width space, zero width joiner
    "\u200b",
    "\u2060\ufeff",  # word joiner, zero width no-break space
    "\u00ad",  # soft hyphen
    "\u3164",  # Hangul filler (a letter that shows nothing)
    "\ufe0f\u034f",  # variation selector, combining grapheme joiner
    "\u0301\u0308",  # combining marks with nothing to combine with
    "\u200b \u3000\u200c",  # format characters and spaces (after stripping, still nothing)
    "\U000e0041\U000e0042",  # tag characters
    "\u2800",  # BRAILLE PATTERN BLANK: a symbol (So) that draws nothing
    "\u2800\u3164\u115f\u1160\uffa0",  # with the Hangul fillers
    "\U0001d159",  # MUSICAL SYMBOL NULL NOTEHEAD
]
BIDI = [
    "\u202eyek-dorp",  # RIGHT-TO-LEFT OVERRIDE
    "prod\u202d",  # LEFT-TO-RIGHT OVERRIDE
    "a\u202ab\u202c",  # embedding and pop
    "x\u2066y\u2069",  # isolates
    "x\u2067y",
    "x\u2068y",
    "name\u200e",  # LEFT-TO-RIGHT MARK
    "\u200fname",  # RIGHT-TO-LEFT MARK
    "اسم\u061c",  # ARABIC LETTER MARK
]
DISGUISED_KEYS = [
    KEY[:12] + "\u200b" + KEY[12:],
    "\u2060".join(KEY),
    KEY[:8] + "\u00ad" + KEY[8:20] + "\ufeff" + KEY[20:],
    unicodedata.normalize("NFKC", KEY).translate({ord(c): ord(c) + 0xFEE0 for c in "omi_dev0123456789abcdef"}),
    "key: " + KEY.replace("_", "\uff3f"),  # fullwidth low lines
    KEY.upper()[:6] + "\u180e" + KEY.upper()[6:],
    KEY[:24] + "\u2028" + KEY[24:],  # a line separator (Zl) inside
    KEY[:24] + "\u2029" + KEY[24:],  # a paragraph separator (Zp)
    KEY[:24] + " " + KEY[24:],  # a space
    KEY[:24] + "\u3000\u00a0" + KEY[24:],  # other spaces (Zs)
    KEY[:24] + "\u0301" + KEY[24:],  # a combining mark (Mn)
    KEY[:10] + "\u20dd" + KEY[10:],  # an enclosing mark (Me)
    KEY[:24] + "\u2800" + KEY[24:],  # a blank glyph
    "\u043e" + KEY[1:],  # CYRILLIC SMALL LETTER O in "omi"
    "omi_d\u0435v_" + KEY[8:],  # CYRILLIC SMALL LETTER IE in "dev"
    "\u03bfmi_dev_" + KEY[8:],  # GREEK SMALL LETTER OMICRON
    "OMI_DEV_" + KEY[8:].upper(),
    "omi-dev-" + KEY[8:],
    "omi_mcp_" + KEY[8:],
    "оmі_ԁеv_" + KEY[8:].replace("a", "\u0430").replace("c", "\u0441"),  # lookalikes in the hex too
    "xyz_abc_" + KEY[8:],  # any prefix-like word pair before 32 hex digits
]
ONE_LINE = ["a\u2028b", "a\u2029b", "line\nbreak", "a\rb", "a\x85b", "a\x0bb"]
ACCEPTED = [
    "Zapier → Notion ✓ 日本",
    "שלום עולם",  # right-to-left text is fine; controls are not
    "مفتاح الإنتاج 2",
    "👨\u200d👩\u200d👧 family app",  # a joiner inside an emoji sequence
    "می\u200cخواهم",  # a zero width non-joiner inside a Persian word
    "é",  # a combining mark on a letter
    "omi_dev_ but not a key",
    "x",
    "東京\u3000本番",  # an ideographic space between words
    "a\u00a0b",  # a no-break space
    "\u2800 braille art ⠿",  # a blank glyph beside visible ones
]


@pytest.mark.parametrize("name", INVISIBLE)
def test_a_name_with_nothing_visible_is_refused(name):
    with pytest.raises(ValidationError) as refused:
        validate_key_name(name.strip())
    assert refused.value.code == "string_not_visible"


@pytest.mark.parametrize("name", BIDI)
def test_a_name_with_a_bidi_control_is_refused_naming_it(name):
    with pytest.raises(ValidationError) as refused:
        validate_key_name(name)
    assert refused.value.code == "string_bidi_control"
    assert text.code_point(text.first_bidi_control(name)) in refused.value.messages[0]


@pytest.mark.parametrize("name", DISGUISED_KEYS)
def test_a_key_broken_up_by_invisible_or_compatibility_characters_is_seen(name):
    assert crypto.contains_raw_key(name)
    with pytest.raises(ValidationError) as refused:
        validate_key_name(name)
    one_line = not any(text.is_line_break(char) for char in name)
    assert refused.value.code == ("secret_in_name" if one_line else "string_control_characters")


@pytest.mark.parametrize("name", ONE_LINE, ids=repr)
def test_a_name_with_a_line_break_is_refused(name):
    with pytest.raises(ValidationError) as refused:
        validate_key_name(name)
    assert refused.value.code == "string_control_characters"


@pytest.mark.parametrize("name", ["build 0123456789abcdef", "md5 " + "0" * 32, "Ölkännchen", "Ακρόπολη", "Москва dev"])
def test_text_that_is_not_key_shaped_is_not_taken_for_a_key(name):
    assert not crypto.contains_raw_key(name)
    validate_key_name(name)


@pytest.mark.parametrize("name", ACCEPTED)
def test_ordinary_names_in_any_script_are_accepted(name):
    validate_key_name(name)
    assert issue(make_owner(), name).api_key.name == name


def test_every_bidi_control_of_the_unicode_data_is_refused():
    # Bidi_Control in Unicode's PropList.txt: U+061C, U+200E..U+200F, U+202A..U+202E, U+2066..U+2069.
    listed = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    found = {code for code in range(0x110000) if text.is_bidi_control(chr(code))}
    assert found == listed


# --- every door -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, error_type",
    [
        ("\u200b\u200d", "string_not_visible"),
        ("\u202eyek-dorp", "string_bidi_control"),
        (DISGUISED_KEYS[0], "secret_in_name"),
    ],
)
def test_the_api_refuses_them_at_body_name(user_client, name, error_type):
    response = user_client.post("/v1/dev/keys", {"name": name}, format="json")

    assert response.status_code == 422
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [(["body", "name"], error_type)]
    assert KEY not in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("name", ["\u200b\u200d", "\u202eyek-dorp"])
def test_the_core_refuses_them_for_every_door(name):
    owner = make_owner()
    with pytest.raises(ValidationError) as refused:
        lifecycle.issue_key(owner=owner, name=name)
    assert "name" in refused.value.error_dict
    api_key = issue(owner, "fine").api_key
    with pytest.raises(ValidationError):
        lifecycle.update_key(api_key, name=name)
    assert ApiKey.objects.get().name == "fine"


@pytest.mark.parametrize("name", ["\u200b\u200d", "\u202eyek-dorp"])
def test_the_web_form_refuses_them_beside_the_field(client, name):
    from .web.pages import post_new_key

    person = sign_in(client)
    response = post_new_key(person, name=name)

    assert response.status_code == 422
    assert response.context["form"].errors["name"]
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("name", ["\u200b\u200d", "\u202eyek-dorp"])
def test_the_admin_refuses_them_beside_the_field(admin_client, name):
    owner = make_owner("admin-named")
    response = admin_client.post(reverse("admin:apikeys_apikey_add"), {"owner": owner.pk, "name": name, "scopes": []})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"]
    assert not ApiKey.objects.exists()


# --- names stored before the rules ------------------------------------------------------


@pytest.fixture
def stored(client):
    """A signed-in person with two keys whose names were stored before the rules: invisible, and reversing."""
    person = sign_in(client)
    invisible = issue(person.user, "placeholder one").api_key
    reversing = issue(person.user, "placeholder two").api_key
    ApiKey.objects.filter(pk=invisible.pk).update(name="\u200b\u200d")
    ApiKey.objects.filter(pk=reversing.pk).update(name="\u202eyek-dorp")
    person.invisible, person.reversing = invisible, reversing
    return person


def test_the_key_list_isolates_names_and_never_shows_an_empty_link(stored):
    page = stored.get(reverse("web:key-list")).content.decode()

    assert "<bdi>\u202eyek-dorp</bdi>" in page
    link = f'<a href="{reverse("web:key-detail", args=[stored.invisible.pk])}">'
    after = page.split(link, 1)[1]
    assert after.startswith('<bdi class="muted"') and NO_VISIBLE_NAME in after.split("</a>", 1)[0]


def test_the_key_pages_isolate_names(stored):
    for view in ("web:key-detail", "web:key-rotate", "web:key-revoke"):
        page = stored.get(reverse(view, args=[stored.reversing.pk])).content.decode()
        assert "<bdi>\u202eyek-dorp</bdi>" in page, view
        title = page.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "\u2068\u202eyek-dorp\u2069" in title, view


def test_the_history_isolates_a_stored_name_it_was_renamed_to(stored):
    api_key = issue(stored.user, "before").api_key
    lifecycle.update_key(api_key, name="after")
    stored_event = api_key.events.get(action="renamed")
    stored_event.details = {**stored_event.details, "name": "\u202eyek-dorp"}
    stored_event.save()

    page = stored.get(reverse("web:key-detail", args=[api_key.pk])).content.decode()

    assert "Renamed to “<bdi>\u202eyek-dorp</bdi>”" in page


def test_the_admin_isolates_names_in_its_list_titles_and_event_details(admin_client, stored):
    lifecycle.update_key(ApiKey.objects.get(pk=stored.reversing.pk), name="renamed")
    ApiKey.objects.filter(pk=stored.reversing.pk).update(name="\u202eyek-dorp")
    event = stored.reversing.events.get(action="renamed")
    event.details = {**event.details, "previous_name": "\u202eyek-dorp"}
    event.save()

    changelist = admin_client.get(reverse("admin:apikeys_apikey_changelist")).content.decode()
    assert "<bdi>\u202eyek-dorp</bdi>" in changelist
    assert NO_VISIBLE_NAME in changelist

    change = admin_client.get(reverse("admin:apikeys_apikey_change", args=[stored.reversing.pk])).content.decode()
    assert "\u202eyek-dorp" not in change.replace("\u2068\u202eyek-dorp\u2069", "").replace(
        'value="\u202eyek-dorp"', ""
    )
    assert "previous name: \u2068\u202eyek-dorp\u2069" in change
    assert str(ApiKey.objects.get(pk=stored.invisible.pk)).startswith(NO_VISIBLE_NAME)


def test_names_in_right_to_left_scripts_are_isolated_and_left_to_right_ones_kept_as_they_are(client):
    person = sign_in(client)
    hebrew = issue(person.user, "שלום").api_key
    plain = issue(person.user, "Plain name").api_key

    page = person.get(reverse("web:key-list")).content.decode()

    assert "<bdi>שלום</bdi>" in page
    assert "Plain name" in page and "<bdi>Plain name</bdi>" not in page
    assert hebrew.pk and plain.pk
