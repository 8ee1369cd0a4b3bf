"""The admin web page: served without data, allowed to call the other services (CORS), and every API call
its script makes answered, with the fields it reads, by the real services."""

from __future__ import annotations

import re

import aio_pika
import pytest

from services.search.admin_page import STATIC
from shared.bus import SUBSCRIPTIONS, dead_letter_queue_name
from tests.integration.annotation.test_users_and_roles import make_user
from tests.integration.search.helpers import follow_job

pytestmark = pytest.mark.integration

PAGE_ORIGIN = "http://127.0.0.1:8003"  # the default CORPUS_CORS_ORIGINS: where search serves the page
SCRIPT = (STATIC / "app.js").read_text()
# api("service", "/path?query" or `/path/${...}`, ...): every call the script makes.
CALLS = re.findall(r'api\("(\w+)", [`"]([^`"]+)[`"]', SCRIPT)


async def test_the_page_and_its_script_load_without_a_key_and_carry_no_data(search_client):
    client = search_client.session  # no Authorization header
    page = await client.get(search_client.make_url("/admin"))
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert "Image Corpus — admin" in html and '<script src="/admin/app.js"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"] and page.headers["X-Content-Type-Options"] == "nosniff"
    script = await client.get(search_client.make_url("/admin/app.js"))
    assert script.status == 200 and script.content_type == "text/javascript" and await script.text() == SCRIPT
    config = await (await client.get(search_client.make_url("/admin/config.json"))).json()
    assert config == {"ingest_url": "http://127.0.0.1:8001", "annotation_url": "http://127.0.0.1:8002"}
    assert "innerHTML" not in SCRIPT  # data goes in as text only


async def test_every_call_of_the_script_is_a_route_of_that_service(ingest_client, annotation_client, search_client):
    clients = {"ingest": ingest_client, "annotation": annotation_client, "search": search_client}
    paths = {name: set((await (await client.get("/openapi.json")).json())["paths"]) for name, client in clients.items()}
    assert {service for service, _ in CALLS} == set(clients) and len(CALLS) >= 10
    for service, raw in CALLS:
        path = re.sub(r"\$\{[^}]+\}", "{x}", raw.split("?")[0])
        known = {re.sub(r"\{[^}]+\}", "{x}", p) for p in paths[service]}
        assert path in known, f"the page calls {service} {path}, which is no route of it"


async def test_the_fields_the_page_reads_are_in_the_answers(ingest_client, annotation_client, search_client):
    me = await (await annotation_client.get("/v1/me")).json()
    assert me["role"] == "admin" and me["name"]
    found = await (await search_client.get("/v1/search", params={"limit": "1", "facets": "formats,sources,labels,created"})).json()
    assert {"total", "total_relation"} <= set(found) and {"formats", "sources", "labels", "created"} <= set(found["facets"])
    near = await search_client.get("/v1/search", params={"limit": "1", "near_duplicate": "true"})
    assert near.status == 200 and "total" in await near.json()
    bus = await (await search_client.get("/v1/admin/bus")).json()
    assert all({"queue", "waiting", "parked"} <= set(q) for q in bus["queues"])
    rejected = await ingest_client.post("/v1/images", data=_form(b"not an image"))
    assert rejected.status == 422
    rejections = (await (await ingest_client.get("/v1/rejections", params={"limit": "15"})).json())["items"]
    assert rejections and {"rejected_at", "reason", "filename", "origin", "sha256", "message"} <= set(rejections[0])
    imports = await ingest_client.get("/v1/imports", params={"limit": "10"})
    assert imports.status == 200 and "items" in await imports.json()
    await annotation_client.post("/v1/labels", json={"name": "admin page label"})
    labels = (await (await annotation_client.get("/v1/labels", params={"limit": "50"})).json())["items"]
    assert labels and {"name", "aliases", "merged_into"} <= set(labels[0])
    started = await search_client.post("/v1/admin/reconcile", params={"repair": "true"})
    job = await started.json()
    assert {"id", "kind", "state", "phase", "done", "total", "result", "error"} <= set(job)
    # Followed to its end: left running, it held the maintenance lock (the next module's jobs got 409) and
    # repaired the shared index under the tests that came after it.
    assert (await follow_job(search_client, started.headers["Location"]))["state"] == "succeeded"


def _form(data: bytes):
    from tests.uploads import image_form

    return image_form(data, "junk.jpg")


async def test_ingest_and_annotation_let_the_page_origin_call_them_and_no_other(ingest_client, annotation_client):
    for client, path in ((ingest_client, "/v1/rejections"), (annotation_client, "/v1/labels")):
        preflight = await client.options(
            path, headers={"Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        )
        assert preflight.status == 200 and preflight.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        assert "AUTHORIZATION" in preflight.headers["Access-Control-Allow-Headers"].upper()
        answer = await client.get(path, headers={"Origin": PAGE_ORIGIN})
        assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        elsewhere = await client.options(
            path, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        )
        assert elsewhere.status == 403 and "Access-Control-Allow-Origin" not in elsewhere.headers
        answer = await client.get(path, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in answer.headers


async def test_the_bus_panel_counts_parked_messages_and_is_for_admins_only(search_client, annotation_client, base_settings):
    _, reader = await make_user(annotation_client, "reader")
    refused = await search_client.get("/v1/admin/bus", headers=reader)
    assert refused.status == 403
    parked_queue = dead_letter_queue_name(base_settings.queue_name("annotation"))
    before = {q["queue"]: q for q in (await (await search_client.get("/v1/admin/bus")).json())["queues"]}
    assert set(before) == {base_settings.queue_name(service) for service in SUBSCRIPTIONS}
    connection = await aio_pika.connect(base_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=parked_queue)
        try:
            after = {q["queue"]: q for q in (await (await search_client.get("/v1/admin/bus")).json())["queues"]}
            assert after[base_settings.queue_name("annotation")]["parked"] == before[base_settings.queue_name("annotation")]["parked"] + 1
        finally:
            queue = await channel.get_queue(parked_queue)
            message = await queue.get(fail=False)
            while message is not None and message.body != b"{}":
                await message.nack(requeue=True)
                message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
