// A filter on the AssemblyScript proxy-wasm SDK (@solo-io/proxy-runtime,
// ABI 0.2.0), loaded by tests/tests/conformance.rs. Root id `conformance`.
//
// Request: `/local` is answered here (200 `answered by assemblyscript`,
// `x-as-local: 1`). Otherwise the request goes on with `x-as-config`
// (the plugin configuration, `none` when empty), `x-as-path`,
// `x-as-missing` (what the SDK reads for an absent header), `x-as-headers`
// (how many request headers the SDK read), `x-replace-me` replaced,
// `x-remove-me` removed. The response gets `x-as-mark` (a property the
// request phase set and read back) and `x-as-body` (the request body
// bytes the SDK read, `unseen` when no body callback ran); local answers
// pass through the response callbacks too, as on Envoy.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  FilterDataStatusValues, stream_context, send_local_response, GrpcStatusValues,
  Counter, HeaderPair
} from "@solo-io/proxy-runtime";
import {
  get_property, set_property, get_buffer_bytes, BufferTypeValues
} from "@solo-io/proxy-runtime/runtime";

class ConformanceRoot extends RootContext {
  requests: Counter | null = null;

  createContext(context_id: u32): Context {
    return new Conformance(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    // The SDK's own configuration read: a zero-length read when empty.
    const ok = super.onConfigure(configuration_size);
    this.requests = new Counter("as_requests");
    return ok;
  }

  configuration(): string {
    const config = this.getConfiguration();
    return config == "" ? "none" : config;
  }
}

class Conformance extends Context {
  body: string = "unseen";

  constructor(context_id: u32, root_context: ConformanceRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root_context as ConformanceRoot;
    root.requests!.increment(1);
    const path = String.UTF8.decode(get_property("request\0path"));
    set_property("as\0mark", String.UTF8.encode("seen"));
    if (path == "/local") {
      const extra: HeaderPair[] = [];
      extra.push(new HeaderPair(String.UTF8.encode("x-as-local"), String.UTF8.encode("1")));
      send_local_response(200, "as_local", String.UTF8.encode("answered by assemblyscript"),
        extra, GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    const request = stream_context.headers.request;
    const missing = request.get("x-missing");
    request.add("x-as-missing", missing == "" ? "empty" : missing);
    request.add("x-as-path", path);
    request.add("x-as-config", root.configuration());
    request.replace("x-replace-me", "replaced");
    request.remove("x-remove-me");
    request.add("x-as-headers", request.get_headers().length.toString());
    return FilterHeadersStatusValues.Continue;
  }

  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) {
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    const body = get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, body_buffer_length as u32);
    this.body = body.byteLength.toString();
    return FilterDataStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const response = stream_context.headers.response;
    response.add("x-as-mark", String.UTF8.decode(get_property("as\0mark")));
    response.add("x-as-body", this.body);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new ConformanceRoot(context_id); }, "conformance");
