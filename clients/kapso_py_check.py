"""Drives the unmodified kapso-whatsapp-cloud-api (Python) client against Chasqui's Meta proxy.

Env: CHASQUI_URL, CHASQUI_API_KEY, PNID, WABA, CUSTOMER (a wa_id whose 24-hour window is
open), INBOUND_WAMID. Exits non-zero on the first failure; prints one JSON line per step.
"""

import asyncio
import base64
import json
import os
import sys
import traceback

from kapso_whatsapp import WhatsAppClient

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
done = []


async def step(name, coro):
    try:
        out = await coro
    except Exception:  # noqa: BLE001 - report any failure with its trace
        print(json.dumps({"step": name, "ok": False, "error": traceback.format_exc()}))
        sys.exit(1)
    done.append(name)
    print(json.dumps({"step": name, "ok": True}))
    return out


def check(condition, what):
    if not condition:
        raise AssertionError(what)


async def main():
    env = os.environ
    pnid, waba, to = env["PNID"], env["WABA"], env["CUSTOMER"]
    async with WhatsAppClient(
        kapso_api_key=env["CHASQUI_API_KEY"],
        base_url=f"{env['CHASQUI_URL']}/meta/whatsapp",
        graph_version="v24.0",
        max_retries=0,
    ) as client:
        m = client.messages
        sent = await step("send_text", m.send_text(phone_number_id=pnid, to=to, body="Hola from kapso python"))
        check(sent.messages[0].id.startswith("wamid."), str(sent))
        await step("send_interactive_buttons", m.send_interactive_buttons(
            phone_number_id=pnid, to=to, body_text="Pick", buttons=[{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]))
        await step("send_location", m.send_location(
            phone_number_id=pnid, to=to, location={"latitude": -12.05, "longitude": -77.04, "name": "Lima"}))
        await step("send_reaction", m.send_reaction(
            phone_number_id=pnid, to=to, reaction={"message_id": sent.messages[0].id, "emoji": "🎉"}))
        await step("send_template", m.send_template(
            phone_number_id=pnid, to=to, template={"name": "hello_world", "language": {"code": "en_US"}}))
        await step("mark_read", m.mark_read(phone_number_id=pnid, message_id=env["INBOUND_WAMID"], typing_indicator=True))

        up = await step("media.upload", client.media.upload(phone_number_id=pnid, file=PNG, type="image/png", filename="dot.png"))
        meta = await step("media.get", client.media.get(media_id=up.id, phone_number_id=pnid))
        check(meta.mime_type == "image/png" and int(meta.file_size) == len(PNG), str(meta))
        data = await step("media.download", client.media.download(media_id=up.id, phone_number_id=pnid))
        check(data == PNG, "downloaded bytes differ")
        await step("send_image(id)", m.send_image(phone_number_id=pnid, to=to, image={"id": up.id}))
        await step("media.delete", client.media.delete(media_id=up.id, phone_number_id=pnid))

        t = client.templates
        created = await step("templates.create", t.create(
            business_account_id=waba, name="kapso_py_check", language="en_US", category="UTILITY",
            components=[{"type": "BODY", "text": "Order {{1}} is ready.", "example": {"body_text": [["A-1"]]}}]))
        listed = await step("templates.list", t.list(business_account_id=waba, name="kapso_py_check"))
        check(len(listed["data"]) == 1, json.dumps(listed))
        one = await step("templates.get", t.get(template_id=created["id"]))
        check(one["name"] == "kapso_py_check", json.dumps(one))
        await step("templates.delete", t.delete(business_account_id=waba, name="kapso_py_check"))

        p = client.phone_numbers
        await step("update_business_profile", p.update_business_profile(phone_number_id=pnid, about="Kapso py", vertical="RETAIL"))
        profile = await step("get_business_profile", p.get_business_profile(phone_number_id=pnid))
        check(profile["data"][0]["about"] == "Kapso py", json.dumps(profile))

        # The library enables its stored-data helpers (messages.query, conversations.*) only
        # when the base URL contains "kapso.ai"; its public request() reaches the same paths.
        history = await step("GET {pnid}/messages", client.request(
            "GET", f"{pnid}/messages", params={"direction": "outbound", "limit": 50}))
        check(len(history["data"]) >= 6, f"{len(history['data'])} outbound")
        convs = await step("GET {pnid}/conversations", client.request("GET", f"{pnid}/conversations"))
        conv_id = convs["data"][0]["id"]
        one = await step("GET {pnid}/conversations/{id}", client.request(
            "GET", f"{pnid}/conversations/{conv_id}"))
        check(one["id"] == conv_id, json.dumps(one))
    print(json.dumps({"done": len(done)}))


asyncio.run(main())
