"""Ingress: the FastAPI front door. Routes parse, call the graph, render; nothing else."""


import asyncio
import logging
import time
import uuid
from typing import AsyncIterator, Optional, Union

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_app import playground as playground_files
from serve_app.auth import bearer_token, key_matches, realtime_key
from serve_app.config import AppConfig, api_keys_from_env
from serve_app.errors import (
    APIError,
    GatewayTimeout,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    RequestTimeout,
    Unauthorized,
    WorkerFailed,
    envelope,
    find_api_error,
    find_cause,
    internal_error_envelope,
)
from serve_app.backends.silero import SileroStream
from serve_app.pipeline.budget import Budget, Reservation
from serve_app.pipeline.fetch import check_url
from serve_app.pipeline.realtime import RealtimeLimits, RealtimeSession, error_body, settings_from_query
from serve_app.pipeline.types import Audio, AudioSource, DecodeOptions, Task, Transcript
from serve_app.pipeline.upload import UploadLimits, bounded_receive, hold_body, upload_too_large
from serve_app.protocol import (
    MAX_REFERENCE_FIELD_CHARS,
    REFERENCE_SECONDS,
    DeltaText,
    ErrorBody,
    ErrorResponse,
    ModelCard,
    StreamError,
    ModelList,
    TranscriptionDiarized,
    TranscriptionJson,
    TranscriptionRequest,
    TranscriptionVerbose,
    diarized_json,
    done_event,
    sse,
    verbose_json,
)

logger = logging.getLogger("ray.serve")

_FORM_FIELDS = ["model", "language", "prompt", "hotwords", "response_format", "temperature", "timestamp_granularities",
                "include", "diarize", "min_speakers", "max_speakers", "stream", "known_speaker_names",
                "known_speaker_references"]
_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "audio upload or http(s) URL"},
                        **{name: {"type": "string"} for name in _FORM_FIELDS},
                    },
                }
            }
        },
    }
}

# Every route answers errors in the one envelope; the transcription routes answer one of the JSON models or
# text (text, srt, vtt), by response_format. Declared so that the OpenAPI schema is the contract.
_ERRORS = {status: {"model": ErrorResponse, "description": what} for status, what in {
    400: "a bad parameter, file or URL", 401: "a missing or wrong API key", 408: "the upload came too slowly",
    413: "over a size or duration limit", 415: "not an accepted audio container", 500: "a server bug",
    503: "overloaded or a failed worker (Retry-After)", 504: "past the request time limit"}.items()}
_TRANSCRIPTION_RESPONSES = {
    200: {
        "model": Union[TranscriptionJson, TranscriptionVerbose, TranscriptionDiarized],
        "description": "json, verbose_json or diarized_json; text, srt and vtt as text/plain; with stream=true, "
                       "server-sent events (transcript.text.delta, transcript.text.segment, transcript.text.done)",
        "content": {"text/plain": {"schema": {"type": "string"}}, "text/event-stream": {"schema": {"type": "string"}}},
    },
    **_ERRORS,
}

app = FastAPI(title="serve-app speech-to-text", version="0.1.0", description="Together/OpenAI audio API")


def _error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(envelope(exc), status_code=exc.status, headers=exc.headers)


@app.exception_handler(APIError)
async def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return _error_response(exc)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        return _error_response(NotFound("No such route. See GET /v1/models and POST /v1/audio/transcriptions."))
    if exc.status_code == 405:
        return _error_response(MethodNotAllowed("This route does not accept that HTTP method."))
    return _error_response(InvalidRequest(str(exc.detail)))


def _internal_error(exc: BaseException) -> dict:
    """A bug's envelope: logged with a request id, which is all the client sees of it."""
    request_id = uuid.uuid4().hex
    logger.error("unhandled error, request id %s", request_id, exc_info=exc)
    return internal_error_envelope(request_id)


@app.exception_handler(Exception)
async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(_internal_error(exc), status_code=500)


# NOTE: helpers sit above the class: @serve.ingress captures the module globals it sees.
def _cancel(responses) -> None:
    for response in responses:
        try:
            response.cancel()
        except Exception:  # noqa: BLE001 - cancel() re-raises the error of a step that already failed
            pass


class _ClientGone(Exception):
    pass


async def _client_gone(request: Request) -> None:
    """Returns when the client's connection closes. The body has been read, so the next ASGI message is
    the disconnect; Ray's proxy forwards it whatever the request's headers say."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(0.05)  # (a server that answers "no more body" at once must not spin us)


async def _answer_unless_client_gone(response, request: Request, timeout_s: float):
    """`await response`, but raise _ClientGone when the client leaves first and asyncio.TimeoutError past
    `timeout_s`. The Ingress watches for the client itself: Ray's proxy stops cancelling a request whose
    client left when the request carries `x-request-disconnect-disabled`, which a client can send."""

    async def result():
        return await response

    answer = asyncio.ensure_future(result())
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait({answer, gone}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not answer.done():
            answer.cancel()
    if answer in done:
        return answer.result()
    if gone in done:
        raise _ClientGone()
    raise asyncio.TimeoutError()


async def _source(value: Optional[object], limit: int) -> AudioSource:
    if value is None:
        raise InvalidRequest("`file` is required: an audio upload or an http(s) URL.", param="file")
    if isinstance(value, UploadFile):
        data = await value.read(limit + 1)
        if len(data) > limit:
            raise upload_too_large(limit)
        return AudioSource(data=np.frombuffer(data, dtype=np.uint8), filename=value.filename)
    text = str(value).strip()
    if text.lower().startswith(("http://", "https://")):
        return AudioSource(url=check_url(text))
    raise InvalidRequest("`file` must be an audio upload or an http(s) URL.", param="file")


@serve.deployment
@serve.ingress(app)
class Ingress:
    def __init__(
        self,
        config: AppConfig,
        decoder: DeploymentHandle,
        asr: dict[str, DeploymentHandle],
        diarizer: Optional[DeploymentHandle],
        merger: DeploymentHandle,
    ) -> None:
        self.config = config
        self.decoder = decoder
        self.asr = asr
        self.diarizer = diarizer
        self.merger = merger
        limits = config.limits
        self._uploads = Budget(limits.max_uploads_in_flight_bytes,
                               what=f"upload bytes ({limits.max_uploads_in_flight_bytes} in all)")
        self._upload_limits = UploadLimits(
            max_body_bytes=limits.max_body_bytes,
            max_upload_bytes=limits.max_upload_bytes,
            timeout_s=limits.upload_timeout_s,
            idle_timeout_s=limits.upload_idle_timeout_s,
            min_bytes_per_s=limits.upload_min_bytes_per_s,
            grace_s=limits.upload_grace_s,
        )
        self._sessions = 0  # realtime sessions open on this replica
        self._playground = playground_files.load()
        self._keys = [k.encode() for k in api_keys_from_env()]
        if not self._keys:
            logger.warning("SERVE_APP_API_KEYS is not set: the API is open to anyone who can reach it")

    # -- routes --

    @app.post("/v1/audio/transcriptions", openapi_extra=_FORM_SCHEMA, responses=_TRANSCRIPTION_RESPONSES)
    @app.post("/audio/transcriptions", openapi_extra=_FORM_SCHEMA, include_in_schema=False)
    async def transcriptions(self, request: Request) -> Response:
        return await self._handle(request, "transcribe")

    @app.post("/v1/audio/translations", openapi_extra=_FORM_SCHEMA, responses=_TRANSCRIPTION_RESPONSES)
    async def translations(self, request: Request) -> Response:
        return await self._handle(request, "translate")

    @app.get("/v1/models", responses={k: v for k, v in _ERRORS.items() if k in (401, 500, 503)})
    async def models(self, request: Request) -> ModelList:
        self._authorize(request)
        return ModelList(
            data=[
                ModelCard(id=name, owned_by=m.owned_by, root=m.name)
                for m in self.config.models
                for name in (m.name, *m.aliases)
            ]
        )

    @app.websocket("/v1/realtime")
    @app.websocket("/realtime")
    async def realtime(self, websocket: WebSocket) -> None:
        """A realtime transcription session (pipeline/realtime.py has the protocol). Refusals are an error
        event and a close code: 1008 for a bad key or query, 1013 (try again later) past the session limit."""
        offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        # A browser that offers subprotocols drops a connection whose answer names none of them.
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        try:
            self._authorize_key(realtime_key(websocket.headers.get("authorization", ""), offered))
            settings = settings_from_query(websocket.query_params, self.config.default_model, self._model_name)
            limit = self.config.realtime.max_sessions
            if self._sessions >= limit:
                raise Overloaded(f"This server holds {limit} realtime sessions per replica; try again later.")
        except APIError as exc:
            await websocket.send_json({"type": "error", "event_id": f"event_{uuid.uuid4().hex[:20]}",
                                       "error": error_body(exc)})
            await websocket.close(code=1013 if isinstance(exc, Overloaded) else 1008, reason=exc.message[:120])
            return
        self._sessions += 1
        cfg = self.config.realtime
        session = RealtimeSession(
            settings, transcribe=self._transcribe_live, make_vad=SileroStream, send=websocket.send_json,
            resolve_model=self._model_name,
            limits=RealtimeLimits(partial_interval_s=cfg.partial_interval_s, max_buffer_s=cfg.max_buffer_s),
        )
        ends = time.monotonic() + cfg.max_session_s
        try:
            await session.start()
            while True:
                wait = min(cfg.idle_timeout_s, ends - time.monotonic())
                try:
                    message = await asyncio.wait_for(websocket.receive(), max(wait, 0))
                except asyncio.TimeoutError:
                    expired = time.monotonic() >= ends
                    if not expired and session.busy:
                        continue  # waiting for its own transcripts is not idle
                    await session.send({"type": "error", "error": error_body(RequestTimeout(
                        f"The session reached this server's limit of {cfg.max_session_s:g} s." if expired else
                        f"No event for {cfg.idle_timeout_s:g} s: the session is closed.",
                        code="session_expired" if expired else "session_idle"))})
                    await websocket.close(code=1000)
                    break
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                await session.handle(text if text is not None else message.get("bytes") or b"")
        except WebSocketDisconnect:
            pass
        finally:
            # Every decode the session still waits for is cancelled: nothing keeps working for nobody.
            await session.close()
            self._sessions -= 1

    def _model_name(self, name: str) -> Optional[str]:
        model = self.config.resolve_model(name)
        return model.name if model is not None else None

    async def _transcribe_live(self, model: str, samples: np.ndarray, options: DecodeOptions, partial: bool) -> str:
        response = self.asr[model].transcribe_live.remote(samples, options, partial)
        try:
            return await asyncio.wait_for(response, self.config.request_timeout_s)
        except asyncio.CancelledError:
            _cancel([response])
            raise
        except Exception as exc:  # noqa: BLE001 - errors from other replicas arrive wrapped by Ray
            _cancel([response])
            raise self._api_error(exc) from None

    @app.get("/healthz", include_in_schema=False)
    async def healthz(self) -> dict:
        return {"status": "ok"}

    # The playground is static and public (it holds no data; its API calls carry the key the user types).
    @app.get("/", include_in_schema=False)
    @app.get("/playground", include_in_schema=False)
    async def playground(self) -> Response:
        return self._playground_file("index.html")

    @app.get("/playground/{name}", include_in_schema=False)
    async def playground_asset(self, name: str) -> Response:
        return self._playground_file(name)

    def _playground_file(self, name: str) -> Response:
        if name not in self._playground:  # only the package's own files, by exact name
            raise NotFound(f"No playground file `{name}`.")
        body, media_type = self._playground[name]
        return Response(body, media_type=media_type, headers=playground_files.HEADERS)

    # -- the one request path --

    async def _handle(self, request: Request, task: Task) -> Response:
        # The upload's bytes count against this replica's ceiling from the first chunk to the answer.
        upload = Reservation(self._uploads)
        try:
            return await self._run(request, task, upload)
        except (BackPressureError, DeploymentUnavailableError):
            # NOTE: Serve installs its own handler for these on the FastAPI app (a plain-text 503); answer
            # in the envelope, with Retry-After, before it can.
            raise Overloaded() from None
        finally:
            upload.release()

    async def _run(self, request: Request, task: Task, upload: Reservation) -> Response:
        self._authorize(request)
        req, source = await self._parse(request, task, upload)
        model = self.config.resolve_model(req.model or self.config.default_model)
        if model is None:
            raise InvalidRequest(
                f"Unknown model {req.model!r}. Served models: {', '.join(self.config.served_names)}.", param="model"
            )
        if req.wants_diarization and self.diarizer is None:
            raise InvalidRequest("Speaker diarization is not enabled on this server.", param="diarize")
        started = time.monotonic()
        deadline = started + self.config.request_timeout_s
        references = None
        if req.known_speaker_names:
            references = await self._references(req, request, deadline)
            if references is None:
                return Response(status_code=499)  # the client left while its clips were decoded
        # The graph: responses are passed on, not awaited. The decoded audio goes to ASR and, when asked
        # for, to the Diarizer at the same time; the Merger waits for both.
        audio = self.decoder.decode.remote(source)
        # Ray has the upload in its object store once the call is submitted (and retries from there): drop
        # this replica's copy now rather than hold it until the answer (benchmarks/memory_timeline.py).
        del source
        diarization = (
            self.diarizer.diarize.remote(audio, req.min_speakers, req.max_speakers, references)
            if req.wants_diarization else None
        )
        asr = self.asr[model.name]
        length = self.merger.duration.remote(audio)
        if req.stream:
            return await self._stream(request, req, asr, audio, diarization, length, started)
        transcript = asr.transcribe.remote(audio, req.decode_options())
        rendered_ref = self.merger.render.remote(transcript, diarization, req.response_format, req.word_granularity)
        # On a timeout or a client that went away, cancel every step, so no replica keeps working for nobody.
        steps = [r for r in (rendered_ref, transcript, diarization, audio, length) if r is not None]
        deadline = await self._deadline(length, request, steps, started)
        if deadline is None:
            return Response(status_code=499)
        rendered = await self._step(rendered_ref, request, steps, deadline)
        if rendered is None:
            return Response(status_code=499)  # nginx's "client closed request": nobody reads it
        return Response(rendered.body, media_type=rendered.media_type, headers=rendered.headers)

    async def _references(self, req: TranscriptionRequest, request: Request,
                          deadline: float) -> Optional[list[tuple[str, Audio]]]:
        """Known speakers' clips, decoded by the same decoder as `file` (the same containers and limits), each
        2-10 s; anything else is a 400 that names the clip. None when the client left."""
        clips = req.known_speakers()
        decoded = [self.decoder.decode.remote(AudioSource(data=np.frombuffer(data, dtype=np.uint8)))
                   for _, data in clips]
        out = []
        for i, ((name, _), ref) in enumerate(zip(clips, decoded)):
            try:
                audio = await self._step(ref, request, decoded, deadline)
            except APIError as exc:
                if exc.status >= 500:
                    raise
                raise InvalidRequest(f"`known_speaker_references` entry {i}: {exc.message}",
                                     param="known_speaker_references") from None
            if audio is None:
                return None
            low, high = REFERENCE_SECONDS
            if not low <= audio.duration <= high:
                raise InvalidRequest(f"`known_speaker_references` entry {i} is {audio.duration:.2f} s of audio: "
                                     f"each clip must be {low:g} to {high:g} s.", param="known_speaker_references")
            out.append((name, audio))
        return out

    async def _deadline(self, length, request: Request, steps: list, started: float) -> Optional[float]:
        """The request's deadline once its file is decoded: request_timeout_s from its start, or longer for a
        long file (request_timeout_s_per_audio_s of each decoded second). None when the client left."""
        seconds = await self._step(length, request, steps, started + self.config.request_timeout_s)
        if seconds is None:
            return None
        return started + max(self.config.request_timeout_s, seconds * self.config.request_timeout_s_per_audio_s)

    async def _step(self, awaitable, request: Request, steps: list, deadline: float):
        """`await awaitable` within the request's deadline while its client is there; None if the client
        left. On any failure every step is cancelled and the error raised as the API error it means."""
        try:
            return await _answer_unless_client_gone(awaitable, request, deadline - time.monotonic())
        except _ClientGone:
            _cancel(steps)
            return None
        except asyncio.CancelledError:
            _cancel(steps)
            raise
        except Exception as exc:  # noqa: BLE001 - errors from other replicas arrive wrapped by Ray
            _cancel(steps)
            raise self._api_error(exc) from None

    def _api_error(self, exc: BaseException) -> BaseException:
        """What a failed step means to the client; anything unforeseen is returned as it is (a 500)."""
        if isinstance(exc, asyncio.TimeoutError):
            return GatewayTimeout(
                f"The request ran past this server's time limit of {self.config.request_timeout_s:g} s "
                f"(or {self.config.request_timeout_s_per_audio_s:g} s per second of audio, when longer)."
            )
        api_error = find_api_error(exc)
        if api_error is not None:
            return api_error
        if isinstance(exc, BackPressureError) or find_cause(exc, BackPressureError) is not None:
            return Overloaded()
        if find_cause(exc, RayActorError) is not None:  # the replica died (or cannot be reached)
            return WorkerFailed()
        return exc

    async def _stream(self, request: Request, req: TranscriptionRequest, asr: DeploymentHandle, audio,
                      diarization, length, started: float) -> Response:
        """stream=true: the windows' text as they are decoded, then (with diarization) the speaker turns,
        then the whole text. An error before the first window is decoded is an ordinary error response;
        after it, an error event ends the stream."""
        items = asr.options(stream=True).transcribe_stream.remote(audio, req.decode_options())
        steps = [r for r in (items, diarization, audio, length) if r is not None]
        deadline = await self._deadline(length, request, steps, started)
        if deadline is None:
            return Response(status_code=499)
        first = await self._step(items.__anext__(), request, steps, deadline)
        if first is None:
            return Response(status_code=499)

        async def events() -> AsyncIterator[str]:
            deltas = DeltaText()
            item = first
            try:
                while not isinstance(item, Transcript):
                    delta = deltas.delta(item.segments)
                    if delta is not None:
                        yield sse(delta)
                    item = await asyncio.wait_for(items.__anext__(), deadline - time.monotonic())
                transcript = item
                if diarization is not None:
                    merged = self.merger.merge.remote(transcript, diarization)
                    transcript = await asyncio.wait_for(merged, deadline - time.monotonic())
                    for segment in diarized_json(transcript).segments:
                        yield sse(segment)
                verbose = (verbose_json(transcript, words=req.word_granularity)
                           if req.response_format == "verbose_json" else None)
                yield sse(done_event(transcript, verbose))
            except Exception as exc:  # noqa: BLE001 - the 200 is sent: the error goes in an event
                error = self._api_error(exc)
                body = (envelope(error) if isinstance(error, APIError) else _internal_error(exc))["error"]
                yield sse(StreamError(error=ErrorBody(**body)))
            finally:
                # Also when the client went away (Starlette cancels or closes this generator): no replica
                # keeps working for nobody. Steps that are done ignore it.
                _cancel(steps)

        # no-cache and no proxy buffering: each event must reach the client when it is sent.
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _parse(
        self, request: Request, task: Task, upload: Reservation
    ) -> tuple[TranscriptionRequest, AudioSource]:
        limits = self._upload_limits
        length = request.headers.get("content-length")
        if length and length.isdigit():  # a declared body is refused before any of it is read
            hold_body(int(length), limits.max_body_bytes, upload, lambda: upload_too_large(limits.max_upload_bytes))
        content_type = request.headers.get("content-type", "").lower()
        # urlencoded too: a request whose `file` is a URL needs no multipart body.
        if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            raise InvalidRequest("Send the request as multipart/form-data with the audio in `file`.", param="file")
        # Chunked bodies too: every chunk is counted as it arrives (pipeline/upload.py).
        request = Request(request.scope, bounded_receive(request.receive, limits, upload))
        limit = limits.max_upload_bytes
        try:
            # Text fields up to a known speaker's clip as a data URL (the body's cap bounds them all together).
            form = await request.form(max_files=1, max_fields=64, max_part_size=MAX_REFERENCE_FIELD_CHARS + 1024)
        except Exception as exc:  # noqa: BLE001 - starlette raises several types for a broken body
            if isinstance(exc, APIError):
                raise
            raise InvalidRequest("The multipart body could not be parsed.", param="file") from None
        try:
            fields = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form.keys() if k != "file"}
            req = TranscriptionRequest.from_form(fields, task)
            return req, await _source(form.get("file"), limit)
        finally:
            await form.close()

    def _authorize(self, request: Request) -> None:
        self._authorize_key(bearer_token(request.headers.get("authorization", "")))

    def _authorize_key(self, key: Optional[str]) -> None:
        if self._keys and not key_matches(key, self._keys):
            raise Unauthorized()
