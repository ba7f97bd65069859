<%--
  Describes the request as the container saw it, one "key=value" line each; a line is left
  out when its value is null. Multi-valued headers give one line per value.
--%>
<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" session="false"
         import="java.io.InputStream,java.security.MessageDigest,java.util.Collections,java.util.HexFormat" %>
<%!
    private static void line(jakarta.servlet.jsp.JspWriter out, String key, Object value)
            throws java.io.IOException {
        if (value != null) {
            out.print(key + "=" + value + "\n");
        }
    }
%>
<%
    // The body is read before anything else: reading parameters would consume a form body.
    MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
    long bodyBytes = 0;
    InputStream body = request.getInputStream();
    byte[] buffer = new byte[65536];
    for (int n = body.read(buffer); n != -1; n = body.read(buffer)) {
        sha256.update(buffer, 0, n);
        bodyBytes += n;
    }

    line(out, "node", System.getProperty("pyhttpd.node"));
    line(out, "method", request.getMethod());
    line(out, "protocol", request.getProtocol());
    line(out, "requestURI", request.getRequestURI());
    line(out, "contextPath", request.getContextPath());
    line(out, "servletPath", request.getServletPath());
    line(out, "pathInfo", request.getPathInfo());
    line(out, "queryString", request.getQueryString());
    for (String name : Collections.list(request.getHeaderNames())) {
        for (String value : Collections.list(request.getHeaders(name))) {
            line(out, "header." + name.toLowerCase(java.util.Locale.ROOT), value);
        }
    }
    if (request.getCookies() != null) {
        for (jakarta.servlet.http.Cookie cookie : request.getCookies()) {
            line(out, "cookie." + cookie.getName(), cookie.getValue());
        }
    }
    line(out, "remoteAddr", request.getRemoteAddr());
    line(out, "remoteHost", request.getRemoteHost());
    line(out, "remotePort", request.getRemotePort());
    line(out, "localAddr", request.getLocalAddr());
    line(out, "localPort", request.getLocalPort());
    line(out, "serverName", request.getServerName());
    line(out, "serverPort", request.getServerPort());
    line(out, "isSecure", request.isSecure());
    line(out, "scheme", request.getScheme());
    line(out, "remoteUser", request.getRemoteUser());
    line(out, "authType", request.getAuthType());
    line(out, "requestedSessionId", request.getRequestedSessionId());
    line(out, "ssl.cipher_suite", request.getAttribute("jakarta.servlet.request.cipher_suite"));
    line(out, "ssl.key_size", request.getAttribute("jakarta.servlet.request.key_size"));
    line(out, "ssl.session_id", request.getAttribute("jakarta.servlet.request.ssl_session_id"));
    Object certificates = request.getAttribute("jakarta.servlet.request.X509Certificate");
    if (certificates instanceof Object[]) {
        line(out, "ssl.certificates", ((Object[]) certificates).length);
    }
    for (String name : Collections.list(request.getAttributeNames())) {
        line(out, "attr." + name, request.getAttribute(name));
    }
    line(out, "contentType", request.getContentType());
    line(out, "contentLength", request.getContentLengthLong());
    line(out, "body.bytes", bodyBytes);
    line(out, "body.sha256", HexFormat.of().formatHex(sha256.digest()));
%>
