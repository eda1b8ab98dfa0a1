"""Drives the unmodified pywa library against Chasqui's Meta proxy (Bearer: the number's token).

Env: CHASQUI_URL, PNID, WABA, META_TOKEN (the number's access token), CUSTOMER (a wa_id whose
24-hour window is open), INBOUND_WAMID. Exits non-zero on the first failure; prints one JSON
line per step.
"""

import base64
import json
import os
import sys
import time
import traceback

from pywa import WhatsApp
from pywa.types import Button
from pywa.types.templates import (
    BodyText,
    ParamFormat,
    Template,
    TemplateCategory,
    TemplateLanguage,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

env = os.environ
url, pnid, waba, to = env["CHASQUI_URL"], env["PNID"], env["WABA"], env["CUSTOMER"]
wa = WhatsApp(phone_id=pnid, token=env["META_TOKEN"], waba_id=waba, api_version="24.0")
# pywa has no base-URL option; this is the documented way to aim it elsewhere.
wa.api._session.base_url = f"{url}/meta/whatsapp/v24.0"
done = []


def step(name, fn):
    try:
        out = fn()
    except Exception:  # noqa: BLE001 - report any failure with its trace
        print(json.dumps({"step": name, "ok": False, "error": traceback.format_exc()}))
        sys.exit(1)
    done.append(name)
    print(json.dumps({"step": name, "ok": True}))
    return out


def check(condition, what):
    if not condition:
        raise AssertionError(what)


text = step("send_message", lambda: wa.send_message(to=to, text="Hola from pywa"))
step("send_message(buttons)", lambda: wa.send_message(
    to=to, text="Pick one", buttons=[Button(title="Yes", callback_data="yes"), Button(title="No", callback_data="no")]))
step("send_location", lambda: wa.send_location(to=to, latitude=-12.05, longitude=-77.04, name="Lima"))
step("send_reaction", lambda: wa.send_reaction(to=to, emoji="👍", message_id=text.id))
step("send_template(hello_world)", lambda: wa.send_template(
    to=to, name="hello_world", language=TemplateLanguage.ENGLISH_US))
step("mark_message_as_read", lambda: check(wa.mark_message_as_read(env["INBOUND_WAMID"]).success, "read"))
step("indicate_typing", lambda: check(wa.indicate_typing(env["INBOUND_WAMID"]).success, "typing"))

media = step("upload_media", lambda: wa.upload_media(PNG, mime_type="image/png", filename="dot.png"))
info = step("get_media_url", lambda: wa.get_media_url(media.id))
step("media fields", lambda: check(info.mime_type == "image/png" and info.file_size == len(PNG), str(info)))
path = step("download_media", lambda: wa.download_media(url=info.url, path="/tmp", filename=f"pywa-{media.id}.png"))
step("downloaded bytes", lambda: check(open(path, "rb").read() == PNG, "bytes differ"))
step("send_image(id)", lambda: wa.send_image(to=to, image=media.id))
step("delete_media", lambda: check(wa.delete_media(media.id).success, "delete"))

created = step("create_template", lambda: wa.create_template(Template(
    name="pywa_check", language=TemplateLanguage.ENGLISH_US, category=TemplateCategory.UTILITY,
    parameter_format=ParamFormat.NAMED,
    components=[BodyText("Hi {{first_name}}, your order is ready.", first_name="Ana")])))
step("template pending", lambda: check(created.status.value == "PENDING", str(created)))


def approved():
    for _ in range(100):
        if wa.get_template(created.id).status.value == "APPROVED":
            return
        time.sleep(0.1)
    raise AssertionError("template never approved")


step("get_template until approved", approved)
templates = step("get_templates", lambda: wa.get_templates(name="pywa_check"))
step("listed", lambda: check(len(list(templates)) == 1, "one template"))
step("delete_template", lambda: check(wa.delete_template("pywa_check", template_id=created.id).success, "delete"))

step("update_business_profile", lambda: check(wa.update_business_profile(about="Baked fresh").success, "update"))
step("get_business_profile", lambda: check(wa.get_business_profile().about == "Baked fresh", "about"))
step("get_business_phone_number", lambda: check(wa.get_business_phone_number().id == pnid, "id"))
step("get_business_phone_numbers", lambda: check(any(n.id == pnid for n in wa.get_business_phone_numbers()), "listed"))
print(json.dumps({"done": len(done)}))
